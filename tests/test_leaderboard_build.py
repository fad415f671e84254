"""build_leaderboard: rows, metrics with intervals, tests against the base, length control, bad input."""

from __future__ import annotations

import json

import pytest

from leaderboard.board import load_leaderboard, metric_values
from leaderboard.build import build_leaderboard
from leaderboard.errors import LeaderboardError
from leaderboard.publish import write_leaderboard_files
from tests.leaderboard_runs import MODELS, make_experiment, make_run_dir


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    return build_leaderboard(make_experiment(tmp_path_factory.mktemp("runs")), base=None)


def row(board: dict, model: str) -> dict:
    return next(r for r in board["rows"] if r["id"] == model)


def test_one_row_per_checkpoint_in_the_order_given(board):
    assert [r["id"] for r in board["rows"]] == [m[0] for m in MODELS]
    assert board["tasks"] == ["longbench_write_en_mini", "longen_mini", "longwrite_ruler_mini"]
    assert (row(board, "sl-iter2")["arm"], row(board, "sl-iter2")["iteration"]) == ("self_lengthen", 2)


def test_the_base_arm_is_the_reference_when_no_base_is_named(board):
    assert board["base"] == "smollm2-135m"
    base = row(board, "smollm2-135m")
    assert base["is_base"]
    assert all(spec["vs_base"] is None for entry in base["tasks"].values() for spec in entry["metrics"].values())


def test_each_reported_length_score_becomes_a_metric_with_its_interval(board):
    longen = row(board, "sl-iter3")["tasks"]["longen_mini"]
    assert list(longen["metrics"]) == ["overall", "about", "range", "above", "below", "words"]
    assert longen["primary"] == "overall"
    for spec in longen["metrics"].values():
        low, high = spec["ci"]
        assert low <= spec["value"] <= high
    about = [s["score"] for s in longen["samples"] if s["type"] == "about"]
    assert longen["metrics"]["about"]["value"] == pytest.approx(sum(about) / len(about))
    assert longen["metrics"]["about"]["n"] == 4


def test_rounded_S_l_in_scores_json_is_recomputed_from_the_samples(board):
    lbw = row(board, "sl-iter1")["tasks"]["longbench_write_en_mini"]
    scores = [s["score"] for s in lbw["samples"]]
    assert lbw["metrics"]["S_l"]["value"] == pytest.approx(sum(scores) / len(scores))


def test_a_longer_writing_iteration_is_significantly_better_than_base_on_length(board):
    test = row(board, "sl-iter3")["tasks"]["longbench_write_en_mini"]["metrics"]["S_l"]["vs_base"]
    assert test["diff"] > 0 and test["significant"] and test["n_pairs"] == 15


def test_each_iteration_is_tested_against_the_one_before_it_on_the_same_prompts(board):
    words = row(board, "sl-iter2")["tasks"]["longbench_write_en_mini"]["metrics"]["words"]
    step = words["vs_previous"]
    before = metric_values(row(board, "sl-iter1")["tasks"]["longbench_write_en_mini"], "words")
    after = metric_values(row(board, "sl-iter2")["tasks"]["longbench_write_en_mini"], "words")
    assert step["model"] == "sl-iter1" and step["n_pairs"] == 15
    assert step["diff"] == pytest.approx(sum(after[d] - before[d] for d in after) / len(after))
    assert step["diff"] > 0 and step["significant"]
    firsts = [row(board, "sl-iter1"), row(board, "smollm2-135m"), row(board, "backtranslation")]
    assert all(spec["vs_previous"] is None for r in firsts for e in r["tasks"].values() for spec in e["metrics"].values())


def test_judge_failures_are_counted_and_never_scored(board):
    lbw = row(board, "sl-iter2")["tasks"]["longbench_write_en_mini"]
    assert lbw["judge_failures"] == 1
    failed = next(s for s in lbw["samples"] if s["doc_id"] == 3)
    assert failed["quality"] is None
    assert lbw["metrics"]["quality"]["n"] == 14
    assert 3 not in metric_values(lbw, "quality")


def test_length_controlled_quality_is_reported_only_for_judged_tasks(board):
    assert list(board["length_control"]) == ["longbench_write_en_mini"]
    assert board["length_control"]["longbench_write_en_mini"]["slope"] > 0
    lbw = row(board, "sl-iter3")["tasks"]["longbench_write_en_mini"]
    # Judges here reward length: the longest writer's quality drops once length is controlled.
    assert lbw["metrics"]["quality_lc"]["value"] < lbw["metrics"]["quality"]["value"]
    assert "quality_lc" not in row(board, "sl-iter3")["tasks"]["longen_mini"]["metrics"]


def test_the_numeric_training_stats_of_each_arm_are_carried_over(board):
    assert row(board, "sl-iter3")["train_stats"] == {"samples": 480, "answer_words_mean": 1540.0,
                                                     "train_tokens": 1050000}
    assert row(board, "smollm2-135m")["train_stats"] is None


def test_ruler_aggregates_that_are_sample_means_become_metrics(board):
    ruler = row(board, "sl-iter2")["tasks"]["longwrite_ruler_mini"]
    assert list(ruler["metrics"]) == ["length_ratio", "S_l", "words"]
    assert ruler["primary"] == "S_l"
    ratios = [s["words"] / s["required_words"] for s in ruler["samples"]]
    assert ruler["metrics"]["length_ratio"]["value"] == pytest.approx(sum(ratios) / len(ratios))
    assert ruler["metrics"]["length_ratio"]["higher_is_better"] is None


def test_an_example_answer_is_kept_per_row_and_task(board):
    example = row(board, "sl-iter1")["tasks"]["longbench_write_en_mini"]["example"]
    assert example["doc_id"] == 0 and example["response"].startswith("sl-iter1 writes:")


def test_a_named_base_replaces_the_base_arm(tmp_path):
    board = build_leaderboard(make_experiment(tmp_path), base="sl-iter1")
    assert board["base"] == "sl-iter1"
    assert row(board, "smollm2-135m")["tasks"]["longen_mini"]["metrics"]["words"]["vs_base"]["diff"] < 0


def test_an_unknown_base_is_a_one_line_error(tmp_path):
    with pytest.raises(LeaderboardError, match="base model 'gpt-9' is not among the runs"):
        build_leaderboard(make_experiment(tmp_path)[:2], base="gpt-9")


def test_two_runs_with_the_same_model_name_are_rejected(tmp_path):
    first = make_run_dir(tmp_path / "a", *MODELS[1][:6], seed=1)
    second = make_run_dir(tmp_path / "b", *MODELS[1][:6], seed=2)
    with pytest.raises(LeaderboardError, match="same model name 'sl-iter1'"):
        build_leaderboard([first, second], base=None)


def test_a_run_dir_without_scores_json_is_a_one_line_error(tmp_path):
    run = make_run_dir(tmp_path, *MODELS[0][:6], seed=0)
    (run / "scores.json").unlink()
    with pytest.raises(LeaderboardError, match=r"scores\.json: file not found"):
        build_leaderboard([run], base=None)


def test_malformed_judgements_json_is_a_one_line_error(tmp_path):
    run = make_run_dir(tmp_path, *MODELS[0][:6], seed=0)
    (run / "judgements.json").write_text('{"tasks": ', encoding="utf-8")
    with pytest.raises(LeaderboardError, match="not valid JSON") as error:
        build_leaderboard([run], base=None)
    assert "\n" not in str(error.value)


def test_a_task_with_one_sample_and_equal_scores_still_builds(tmp_path):
    run = make_run_dir(tmp_path, *MODELS[0][:6], seed=0)
    scores = json.loads((run / "scores.json").read_text())
    ruler = scores["tasks"]["longwrite_ruler_mini"]
    ruler["samples"] = ruler["samples"][:1]
    (run / "scores.json").write_text(json.dumps(scores))
    other = make_run_dir(tmp_path, *MODELS[1][:6], seed=1)
    board = build_leaderboard([run, other], base=None)
    spec = row(board, "sl-iter1")["tasks"]["longwrite_ruler_mini"]["metrics"]["S_l"]
    assert spec["vs_base"]["n_pairs"] == 1 and not spec["vs_base"]["significant"]
    assert row(board, "smollm2-135m")["tasks"]["longwrite_ruler_mini"]["metrics"]["S_l"]["ci"] == [0.0, 0.0]


def test_leaderboard_json_round_trips_through_the_published_files(board, tmp_path):
    paths = write_leaderboard_files(board, tmp_path / "out")
    assert load_leaderboard(paths["json"]) == json.loads(json.dumps(board))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["leaderboard.html", "leaderboard.json", "leaderboard.md"]


def test_a_task_whose_judgements_all_failed_has_no_quality_value_and_still_renders(tmp_path):
    from leaderboard.render_html import render_html
    from leaderboard.render_markdown import render_markdown

    runs = [make_run_dir(tmp_path, *m[:6], seed=i, judge_failure_ids=range(100)) for i, m in enumerate(MODELS[:2])]
    board = build_leaderboard(runs, base=None)
    lbw = row(board, "sl-iter1")["tasks"]["longbench_write_en_mini"]
    assert lbw["judge_failures"] == 15
    assert (lbw["metrics"]["quality"]["value"], lbw["metrics"]["quality"]["vs_base"]) == (None, None)
    assert "quality_lc" not in lbw["metrics"] and board["length_control"] == {}
    markdown = render_markdown(board)
    assert "| 242 [216, 268] | – ⚠ unreliable | unreliable (1, 2) |" in markdown
    assert "1. judge failed on 15 of 15 samples (100%), above 20%" in markdown
    assert "| sl-iter1 | 15 of 15 (100%) | not measured | not measured |" in markdown
    assert "No judged task." in render_html(board)


def test_the_method_says_whether_the_arms_trained_on_matched_budgets(tmp_path):
    dirs = make_experiment(tmp_path)
    assert "not matched" in build_leaderboard(dirs, None)["method"]["training budgets"]
    trained = next(d for d in dirs if json.loads((d / "run.json").read_text()).get("train_stats"))
    run = json.loads((trained / "run.json").read_text())
    run["train_stats"]["matched_budget"] = "examples: 6, seeded subsample of 480"
    (trained / "run.json").write_text(json.dumps(run))
    method = build_leaderboard(dirs, None)["method"]["training budgets"]
    assert method == f"arms trained on matched budgets: {run['model']}: examples: 6, seeded subsample of 480"
