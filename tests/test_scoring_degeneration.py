"""Degeneration metrics on every scored sample: repeated 10-grams, effective length, sentence end, ended at cap."""

from __future__ import annotations

import json

import pytest

from tasks.scoring import (
    ScoringInputError,
    count_words_longbench_write,
    count_words_longen,
    effective_words,
    ends_sentence,
    repeated_ngram_share,
    score_file,
    score_lm_eval_samples,
    score_predictions,
    word_tokens,
)
from tests.test_harness_cli_errors import run_cli

LOOP = "The cat sat on the mat and looked at the sky above the town. " * 40
REAL = ("Morning came slowly over the harbour. Fishermen untangled their nets while gulls argued over scraps, "
        "and a boy ran along the pier with a letter he had promised to deliver before noon.")
ROWS = {
    "longbench_write_en_mini": {"prompt": "Write 300 words about a cat.", "length": 300, "type": "x"},
    "longen_mini": {"query": "Write a story of about 300 words.", "type": "about", "constraint": "about 300 words"},
    "longwrite_ruler_mini": {"prompt": "Write 300 words about a cat.", "length": 300, "type": "ruler"},
}


def test_a_looping_answer_scored_by_the_score_command_has_a_high_repeated_10gram_share(tmp_path):
    rows = [ROWS["longbench_write_en_mini"] | {"response": LOOP}, ROWS["longbench_write_en_mini"] | {"response": REAL}]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    done = run_cli("score", "--task", "longbench_write_en_mini", "--input", str(preds),
                   "--output", str(tmp_path / "scores.json"))
    assert done.returncode == 0, done.stderr
    scores = json.loads((tmp_path / "scores.json").read_text(encoding="utf-8"))
    looping, real = scores["samples"]
    assert looping["repeated_10gram_share"] > 0.9 and real["repeated_10gram_share"] == 0.0
    assert looping["effective_words"] == 14 and real["effective_words"] == real["words"]
    assert "repeated_10gram_share=" in done.stdout


@pytest.mark.parametrize("task", sorted(ROWS))
def test_every_task_family_scores_the_degeneration_fields(task):
    sample = score_predictions(task, [ROWS[task] | {"response": LOOP}])["samples"][0]
    assert sample["repeated_10gram_share"] > 0.9
    assert sample["effective_words"] == 14 and sample["ends_sentence"] is True
    assert sample["finish_reason"] is None and sample["ended_at_cap"] is None


def test_the_share_is_one_minus_distinct_over_total_10grams():
    tokens = ["a"] * 12  # three 10-grams, one distinct
    assert repeated_ngram_share(tokens) == pytest.approx(1 - 1 / 3)
    assert repeated_ngram_share(list("abcdefghijkl")) == 0.0


def test_fewer_than_ten_words_have_no_10gram_and_share_zero():
    assert repeated_ngram_share(["a"] * 9) == 0.0
    assert repeated_ngram_share([]) == 0.0
    assert repeated_ngram_share(["a"] * 10) == 0.0


def test_effective_words_stop_before_the_first_repeated_10gram():
    prefix = [f"w{i}" for i in range(7)]
    cycle = [f"c{i}" for i in range(10)]
    assert effective_words(prefix + cycle + cycle + cycle[:3]) == 17
    assert effective_words(prefix + cycle) == 17
    assert effective_words(["a"] * 9) == 9


def test_tokens_are_lowercased_so_a_loop_that_changes_case_still_repeats():
    assert word_tokens("longbench_write", "The End the end") == ["the", "end", "the", "end"]


@pytest.mark.parametrize("text", ["Hello, world! It's 3 p.m. — 你好，世界。 well-known x1 ok", "", "  a\nb\tc  ",
                                  "中abc def 1,000 words", "（注）全角ＡＢＣ text"])
def test_word_tokens_are_as_many_as_each_benchmark_counts(text):
    assert len(word_tokens("longen", text)) == count_words_longen(text)
    assert len(word_tokens("longbench_write", text)) == count_words_longbench_write(text)
    assert len(word_tokens("longwrite_ruler", text)) == count_words_longbench_write(text)


@pytest.mark.parametrize(("text", "ends"), [
    ("It was over.", True), ("Was it over?", True), ("Never again!", True), ("And then…", True),
    ('He said "stop."', True), ("(See the map.)", True), ("**The end.**", True), ("It was over.  \n", True),
    ("故事结束了。", True), ("真的吗？", True), ("「好。」", True),
    ("Then she didn'", False), ("Then she didn't want to go and", False), ("A list:", False),
    ("# Heading", False), ("", False), ("   ", False), ("3.14", False),
])
def test_ends_sentence_reads_the_last_mark_past_closing_quotes_and_brackets(text, ends):
    assert ends_sentence(text) is ends


def test_a_finish_reason_of_length_marks_the_sample_as_ended_at_the_cap():
    rows = [ROWS["longbench_write_en_mini"] | {"response": REAL, "finish_reason": reason, "doc_id": i}
            for i, reason in enumerate(["length", "stop"])]
    cut, stopped = score_predictions("longbench_write_en_mini", rows)["samples"]
    assert (cut["finish_reason"], cut["ended_at_cap"]) == ("length", True)
    assert (stopped["finish_reason"], stopped["ended_at_cap"]) == ("stop", False)


def test_an_absent_finish_reason_is_unknown_not_false():
    sample = score_predictions("longen_mini", [ROWS["longen_mini"] | {"response": REAL}])["samples"][0]
    assert sample["ended_at_cap"] is None


def test_a_finish_reason_that_is_not_a_string_names_the_row():
    with pytest.raises(ScoringInputError, match=r"^row 1: 'finish_reason' must be a string or null, got int$"):
        score_predictions("longbench_write", [ROWS["longbench_write_en_mini"] | {"response": "a", "finish_reason": 1}])


def test_the_task_means_count_ended_at_cap_over_known_finish_reasons_only():
    rows = [ROWS["longbench_write_en_mini"] | {"response": response, "finish_reason": reason}
            for response, reason in [(LOOP, "length"), (REAL, "stop"), (REAL, None), ("and then", None)]]
    result = score_predictions("longbench_write_en_mini", rows)
    assert result["ended_at_cap"] == 0.5
    assert result["ends_sentence"] == 0.75
    for name in ("repeated_10gram_share", "effective_words"):
        assert result[name] == pytest.approx(sum(s[name] for s in result["samples"]) / 4)
    assert score_predictions("longbench_write_en_mini", rows[2:])["ended_at_cap"] is None


def test_an_lm_eval_sample_record_keeps_the_finish_reason_the_harness_added(tmp_path):
    record = {"doc_id": 4, "doc": ROWS["longbench_write_en_mini"], "resps": [[LOOP]], "filtered_resps": [LOOP],
              "finish_reason": "length"}
    path = tmp_path / "samples_longbench_write_en_mini.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    sample = score_file("longbench_write_en_mini", path)["samples"][0]
    assert (sample["finish_reason"], sample["ended_at_cap"]) == ("length", True)
    scored = score_lm_eval_samples({"longbench_write_en_mini": [record, record | {"doc_id": 5, "finish_reason": None}]},
                                   "m")
    assert [s["ended_at_cap"] for s in scored["tasks"]["longbench_write_en_mini"]["samples"]] == [True, None]
