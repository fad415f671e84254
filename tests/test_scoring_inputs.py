"""Reading predictions to score: JSONL rows, lm-eval sample records, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from tasks.scoring import ScoringInputError, score_file, score_predictions


def write_lines(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_score_file_scores_benchmark_rows_with_responses_skipping_blank_lines(tmp_path):
    rows = [{"prompt": "Write 100 words.", "length": 100, "type": "x", "response": "hi"}]
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(r) for r in rows] + [""])
    assert score_file("longbench_write", path) == score_predictions("longbench_write", rows)


def test_score_file_turns_lm_eval_samples_into_rows(tmp_path):
    record = {"doc_id": 3, "doc": {"prompt": "Write 100 words.", "length": 100, "type": "x"},
              "target": "100", "resps": [["a b c"]], "filtered_resps": ["a b c"], "S_l": 0.0}
    path = write_lines(tmp_path / "samples_longbench_write_en_mini.jsonl", [json.dumps(record)])
    rows = [{"prompt": "Write 100 words.", "length": 100, "type": "x", "doc_id": 3, "response": "a b c"}]
    assert score_file("longbench_write_en_mini", path) == score_predictions("longbench_write_en_mini", rows)


def test_missing_predictions_file_is_a_one_line_error(tmp_path):
    with pytest.raises(ScoringInputError, match=r"^predictions file .*nope.jsonl does not exist$"):
        score_file("longbench_write", tmp_path / "nope.jsonl")


def test_malformed_json_line_names_its_line_number(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", ['{"response": "a", "prompt": "p", "length": 1}', "{not json"])
    with pytest.raises(ScoringInputError, match=r"p.jsonl line 2: malformed JSON"):
        score_file("longbench_write", path)


def test_row_without_response_names_its_line_number(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", ['{"response": "a"}', "", '{"prompt": "p", "length": 1}'])
    with pytest.raises(ScoringInputError, match=r"p.jsonl line 3: no 'response' string"):
        score_file("longbench_write", path)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ScoringInputError, match=r"unknown task 'ifeval'; known tasks: longen, longen_mini"):
        score_predictions("ifeval", [])


def test_non_string_response_is_rejected():
    with pytest.raises(ScoringInputError, match=r"^row 1: 'response' must be a string, got int$"):
        score_predictions("longbench_write", [{"prompt": "p", "length": 10, "response": 3}])


def test_longbench_write_row_without_length_is_rejected():
    with pytest.raises(ScoringInputError, match=r"^row 1 has no 'length' field$"):
        score_predictions("longbench_write", [{"prompt": "p", "response": "a"}])


def test_scoring_error_is_a_value_error():
    assert issubclass(ScoringInputError, ValueError)


def test_empty_predictions_file_is_an_error_naming_it(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", ["", "  "])
    with pytest.raises(ScoringInputError, match=r"p.jsonl holds no rows$"):
        score_file("longbench_write", path)


def test_duplicate_doc_id_names_both_rows():
    rows = [{"doc_id": 5, "prompt": "p", "length": 10, "response": "a"}] * 2
    with pytest.raises(ScoringInputError, match=r"^row 2: duplicate 'doc_id' 5 \(first at row 1\)$"):
        score_predictions("longbench_write", rows)


@pytest.mark.parametrize("length", [1e308, float("inf"), float("nan"), -3, 0, 2.5, "ten", True, 1_000_001])
def test_length_demand_outside_one_to_a_million_whole_words_is_rejected(length):
    with pytest.raises(ScoringInputError, match=r"^row 1: 'length' must be a whole number of words"):
        score_predictions("longbench_write", [{"prompt": "p", "length": length, "response": "a"}])


@pytest.mark.parametrize("length", [100, 100.0, "100"])
def test_length_demand_may_be_an_integral_float_or_a_digit_string(length):
    assert score_predictions("longbench_write", [{"prompt": "p", "length": length, "response": "a"}])["samples"][0][
        "required_words"] == 100


@pytest.mark.parametrize("constraint", ["about 0 words", "about " + "9" * 400 + " words"])
def test_longen_demand_of_zero_or_an_overflowing_number_is_rejected(constraint):
    row = {"query": "q", "type": "about", "constraint": constraint, "response": "a"}
    with pytest.raises(ScoringInputError, match=r"^row 1: 'constraint' .* each must be 1 to 1,000,000$"):
        score_predictions("longen", [row])


def test_filtered_resps_given_as_a_string_names_the_line(tmp_path):
    record = {"doc_id": 0, "doc": {"prompt": "p", "length": 10}, "filtered_resps": "hello"}
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(record)])
    with pytest.raises(ScoringInputError, match=r"p.jsonl line 1: 'filtered_resps' must be a list of responses, got str"):
        score_file("longbench_write", path)


def test_non_utf8_line_names_its_line_number(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"prompt": "p", "length": 1, "response": "a"}\n{"response": "\xff"}\n')
    with pytest.raises(ScoringInputError, match=r"p.jsonl line 2: not UTF-8 text"):
        score_file("longbench_write", path)


def test_score_file_names_the_file_and_line_of_a_bad_row(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [json.dumps({"prompt": "p", "length": 10, "response": "a"}),
                                              json.dumps({"prompt": "p", "length": -1, "response": "a"})])
    with pytest.raises(ScoringInputError, match=r"p.jsonl line 2: 'length'"):
        score_file("longbench_write", path)
