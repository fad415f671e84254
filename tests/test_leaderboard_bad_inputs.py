"""A value of the wrong type anywhere the leaderboard reads is one error line naming the file and field, exit 2.

Each case edits one field of a valid run directory or leaderboard.json; before, these became blank cells,
markup in a view or a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.journal import write_json_atomically
from leaderboard import check, publish
from leaderboard.board import load_leaderboard
from leaderboard.build import build_leaderboard
from leaderboard.errors import LeaderboardError
from tests.leaderboard_boards import BASELINE, hand_made_board
from tests.leaderboard_runs import MODELS, make_run_dir

LBW = "tasks['longbench_write_en_mini']"
RULER = "tasks['longwrite_ruler_mini']"


def _set(path: list, value):
    def edit(document: dict) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _sample(task: str, field: str, value, index: int = 0):
    return _set(["tasks", task, "samples", index, field], value)


# (file, edit, the field the message must name)
RUN_DIR_CASES = {
    "iteration_html": ("run.json", _set(["iteration"], "<img src=x onerror=alert(1)>"), "iteration"),
    "iteration_fraction": ("run.json", _set(["iteration"], 1.5), "iteration"),
    "iteration_bool": ("run.json", _set(["iteration"], True), "iteration"),
    "iteration_negative": ("run.json", _set(["iteration"], -1), "iteration"),
    "model_number": ("run.json", _set(["model"], 42), "model"),
    "model_empty": ("run.json", _set(["model"], ""), "model"),
    "arm_list": ("run.json", _set(["arm"], ["self_lengthen"]), "arm"),
    "model_path_number": ("run.json", _set(["model_path"], 3), "model_path"),
    "train_stats_text": ("run.json", _set(["train_stats"], "lots"), "train_stats"),
    "score_text": ("scores.json", _sample("longbench_write_en_mini", "score", "80.1"), f"{LBW}.samples[0].score"),
    "score_nan": ("scores.json", _sample("longbench_write_en_mini", "score", float("nan")), f"{LBW}.samples[0].score"),
    "score_infinity": ("scores.json", _sample("longbench_write_en_mini", "score", float("inf"), 4),
                       f"{LBW}.samples[4].score"),
    "score_bool": ("scores.json", _sample("longbench_write_en_mini", "score", True), f"{LBW}.samples[0].score"),
    "words_text": ("scores.json", _sample("longbench_write_en_mini", "words", "many"), f"{LBW}.samples[0].words"),
    "required_words_list": ("scores.json", _sample("longbench_write_en_mini", "required_words", [300]),
                            f"{LBW}.samples[0].required_words"),
    "doc_id_list": ("scores.json", _sample("longbench_write_en_mini", "doc_id", [0]), f"{LBW}.samples[0].doc_id"),
    "doc_id_twice": ("scores.json", _sample("longbench_write_en_mini", "doc_id", 0, 1), f"{LBW}.samples[1].doc_id"),
    "response_number": ("scores.json", _sample("longbench_write_en_mini", "response", 5),
                        f"{LBW}.samples[0].response"),
    "reported_field_text": ("scores.json", _sample("longwrite_ruler_mini", "length_ratio", "x"),
                            f"{RULER}.samples[0].length_ratio"),
    "tasks_list": ("scores.json", _set(["tasks"], []), "tasks"),
    "samples_object": ("scores.json", _set(["tasks", "longen_mini", "samples"], {}), "tasks['longen_mini'].samples"),
    "quality_text": ("judgements.json", _sample("longbench_write_en_mini", "quality", "high"),
                     f"{LBW}.samples[0].quality"),
    "failures_text": ("judgements.json", _set(["tasks", "longbench_write_en_mini", "failures"], "one"),
                      f"{LBW}.failures"),
    "trust_list": ("judgements.json", _set(["tasks", "longbench_write_en_mini", "trust"], []), f"{LBW}.trust"),
    "trust_sanity_p_text": ("judgements.json", _set(["tasks", "longbench_write_en_mini", "trust"],
                                                    {"sanity": {"truncated": {"rate": 0.9, "p_value": "0.01"}}}),
                            f"{LBW}.trust.sanity['truncated'].p_value"),
    "trust_sanity_ci_short": ("judgements.json", _set(["tasks", "longbench_write_en_mini", "trust"],
                                                      {"sanity": {"swapped": {"rate": 0.9, "ci": [0.5]}}}),
                              f"{LBW}.trust.sanity['swapped'].ci"),
    "trust_agreement_alpha_nan": ("judgements.json", _set(["tasks", "longbench_write_en_mini", "trust"],
                                                          {"agreement": {"krippendorff_alpha": float("nan")}}),
                                  f"{LBW}.trust.agreement.krippendorff_alpha"),
    "trust_reasons_text": ("judgements.json", _set(["tasks", "longbench_write_en_mini", "trust"],
                                                   {"reliable": False, "unreliable_reasons": "bad judge"}),
                           f"{LBW}.trust.unreliable_reasons"),
    "trust_reliable_text": ("judgements.json", _set(["tasks", "longbench_write_en_mini", "trust"],
                                                    {"reliable": "no"}), f"{LBW}.trust.reliable"),
}

ROW_TASK = "rows[0].tasks['longbench_write_en_mini']"
BOARD_CASES = {
    "sample_score_text": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "samples", 0, "score"], "abc"),
                          f"{ROW_TASK}.samples[0].score"),
    "sample_words_nan": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "samples", 2, "words"], float("nan")),
                         f"{ROW_TASK}.samples[2].words"),
    "metric_value_text": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "metrics", "S_l", "value"], "62"),
                          f"{ROW_TASK}.metrics['S_l'].value"),
    "metric_ci_short": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "metrics", "S_l", "ci"], [1]),
                        f"{ROW_TASK}.metrics['S_l'].ci"),
    "vs_base_p_text": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "metrics", "S_l", "vs_base"],
                            {"diff": 1.0, "p": "x", "n_pairs": 3, "significant": False}),
                       f"{ROW_TASK}.metrics['S_l'].vs_base.p"),
    "judge_failures_negative": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "judge_failures"], -1),
                                f"{ROW_TASK}.judge_failures"),
    "n_text": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "n"], "12"), f"{ROW_TASK}.n"),
    "quality_trust_text": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "quality_trust"], "reliable"),
                           f"{ROW_TASK}.quality_trust"),
    "quality_trust_reason_number": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "quality_trust"],
                                         {"reliable": False, "reasons": [5]}), f"{ROW_TASK}.quality_trust.reasons[0]"),
    "quality_trust_reliable_with_reasons": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "quality_trust"],
                                                 {"reliable": True, "reasons": ["sanity not measured"]}),
                                            f"{ROW_TASK}.quality_trust.reliable"),
    "quality_trust_unreliable_without_reason": (_set(["rows", 0, "tasks", "longbench_write_en_mini",
                                                      "quality_trust"], {"reliable": False, "reasons": []}),
                                                f"{ROW_TASK}.quality_trust.reliable"),
    "quality_trust_rate_text": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "quality_trust"],
                                     {"reliable": True, "reasons": [], "failures_rate": "7%"}),
                                f"{ROW_TASK}.quality_trust.failures_rate"),
    "quality_trust_sanity_n_negative": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "quality_trust"],
                                             {"reliable": True, "reasons": [], "sanity": {"shuffled": {"n": -1}}}),
                                        f"{ROW_TASK}.quality_trust.sanity['shuffled'].n"),
    "example_response_number": (_set(["rows", 0, "tasks", "longbench_write_en_mini", "example"],
                                     {"doc_id": 0, "prompt": "p", "response": 5}), f"{ROW_TASK}.example.response"),
    "iteration_html": (_set(["rows", 0, "iteration"], "<script>alert(1)</script>"), "rows[0].iteration"),
    "model_number": (_set(["rows", 0, "model"], 5), "rows[0].model"),
    "arm_object": (_set(["rows", 0, "arm"], {}), "rows[0].arm"),
    "is_base_text": (_set(["rows", 0, "is_base"], "yes"), "rows[0].is_base"),
    "train_stat_text": (_set(["rows", 0, "train_stats"], {"samples": "480"}), "rows[0].train_stats['samples']"),
    "tasks_text": (_set(["tasks"], "longbench_write_en_mini"), "tasks"),
    "method_number": (_set(["method"], {"ci": 3}), "method['ci']"),
    "slope_text": (_set(["length_control"], {"t": {"slope": "x", "common_words": 900.0, "intercepts": {}}}),
                   "length_control['t'].slope"),
    "created_number": (_set(["created"], 5), "created"),
    "base_list": (_set(["base"], ["sl-iter2"]), "base"),
}


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return make_run_dir(tmp_path / "runs", *MODELS[1][:6], seed=1)


def _edit_run_dir(run_dir: Path, name: str, edit) -> None:
    document = json.loads((run_dir / name).read_text(encoding="utf-8"))
    edit(document)
    (run_dir / name).write_text(json.dumps(document), encoding="utf-8")


def _edited_board(tmp_path: Path, edit) -> Path:
    board = hand_made_board(BASELINE)
    edit(board)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(board), encoding="utf-8")  # json.dumps writes NaN, as a careless tool would
    return path


@pytest.mark.parametrize("case", RUN_DIR_CASES)
def test_a_bad_run_dir_field_is_one_error_naming_file_and_field(run_dir, case):
    name, edit, field = RUN_DIR_CASES[case]
    _edit_run_dir(run_dir, name, edit)
    with pytest.raises(LeaderboardError) as error:
        build_leaderboard([run_dir], base=None)
    message = str(error.value)
    assert message.startswith(f"{run_dir / name}: {field} must be") and "\n" not in message


@pytest.mark.parametrize("case", RUN_DIR_CASES)
def test_the_leaderboard_command_exits_2_on_a_bad_run_dir_field(run_dir, tmp_path, capsys, case):
    name, edit, field = RUN_DIR_CASES[case]
    _edit_run_dir(run_dir, name, edit)
    assert publish.main([str(run_dir), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ") and f"{name}: {field} must be" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", BOARD_CASES)
def test_a_bad_leaderboard_field_is_one_error_naming_file_and_field(tmp_path, case):
    edit, field = BOARD_CASES[case]
    path = _edited_board(tmp_path, edit)
    with pytest.raises(LeaderboardError) as error:
        load_leaderboard(path)
    assert str(error.value).startswith(f"{path}: {field} must be") and "\n" not in str(error.value)


@pytest.mark.parametrize("case", BOARD_CASES)
def test_check_exits_2_never_1_on_a_bad_leaderboard_field(tmp_path, capsys, case):
    edit, field = BOARD_CASES[case]
    baseline = tmp_path / "baseline.json"
    write_json_atomically(baseline, hand_made_board([s + 20 for s in BASELINE]))  # the candidate would regress
    candidate = _edited_board(tmp_path, edit)
    assert check.main(["--baseline", str(baseline), "--candidate", str(candidate)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"bad.json: {field} must be" in error


def test_a_duplicate_row_id_in_a_leaderboard_is_an_error(tmp_path):
    board = hand_made_board(BASELINE)
    board["rows"].append(board["rows"][0])
    path = tmp_path / "twice.json"
    write_json_atomically(path, board)
    with pytest.raises(LeaderboardError, match=r"rows\[1\]\.id must be unique \(one row per model\), got 'sl-iter2'$"):
        load_leaderboard(path)
