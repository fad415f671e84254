"""The regression check: exit code 0 when fine, 1 on a significant drop of a gated metric beyond tolerance, 2 on bad
input; gated: each task's primary metric (or the metrics named), Holm-corrected; the others reported."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from scipy import stats

from infra.journal import write_json_atomically
from leaderboard.build import build_leaderboard
from leaderboard.check import check_table, compare, holm_adjusted, main, print_check
from leaderboard.stats import paired_test
from tasks.metadata import primary_metric
from tasks.scoring import TASK_FAMILIES, score_predictions
from tests.leaderboard_boards import BASELINE, hand_made_board
from tests.leaderboard_runs import MODELS, make_run_dir


def write(tmp_path, name: str, board: dict):
    path = tmp_path / name
    write_json_atomically(path, board)
    return path


def test_an_identical_candidate_passes(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    result = compare(base, base, None, 0.02)
    assert result.exit_code == 0
    assert [(c.task, c.metric, c.n_pairs) for c in result.comparisons] == [("longbench_write_en_mini", "S_l", 12)]


def test_a_significant_drop_beyond_tolerance_fails(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    worse = write(tmp_path, "new.json", hand_made_board([s - 8 - 0.1 * i for i, s in enumerate(BASELINE)]))
    result = compare(base, worse, None, 0.02)
    assert result.exit_code == 1
    (regression,) = result.regressions
    assert regression.drop == pytest.approx(8.55) and regression.p < 0.05


def test_a_significant_drop_within_tolerance_passes(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    worse = write(tmp_path, "new.json", hand_made_board([s - 1 for s in BASELINE]))
    assert compare(base, worse, None, 0.05).exit_code == 0
    assert compare(base, worse, None, 0.0).exit_code == 1


def test_a_drop_on_too_few_prompts_to_be_significant_passes(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE[:3]))
    worse = write(tmp_path, "new.json", hand_made_board([s - 20 for s in BASELINE[:3]]))
    result = compare(base, worse, None, 0.02)
    assert result.exit_code == 0 and result.comparisons[0].drop == pytest.approx(20)


def test_an_improvement_passes(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    better = write(tmp_path, "new.json", hand_made_board([s + 5 for s in BASELINE]))
    assert compare(base, better, None, 0.0).exit_code == 0


def test_a_candidate_without_answers_to_some_baseline_prompts_is_unusable_input_unless_a_subset_is_allowed(
        tmp_path, capsys):
    """A crashed or shortened candidate run must not pass on what is left of the prompts."""
    board = hand_made_board([s - 30 for s in BASELINE])
    board["rows"][0]["tasks"]["longbench_write_en_mini"]["samples"] = \
        board["rows"][0]["tasks"]["longbench_write_en_mini"]["samples"][:5]
    base, new = write(tmp_path, "base.json", hand_made_board(BASELINE)), write(tmp_path, "new.json", board)
    result = compare(base, new, None, 0.02)
    assert result.exit_code == 2 and result.error == (
        "the candidate sl-iter2 has no answer to 7 of the baseline's 12 prompts of longbench_write_en_mini "
        "(doc_ids 5, 6, 7, 8, 9, ...): run it on the baseline's prompts, or pass --allow-subset to compare the shared ones")
    assert main(["--baseline", str(base), "--candidate", str(new)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    subset = compare(base, new, None, 0.02, allow_subset=True)
    assert subset.comparisons[0].n_pairs == 5 and subset.exit_code == 0  # five pairs cannot reach p < 0.05
    assert main(["--baseline", str(base), "--candidate", str(new), "--allow-subset"]) == 0


def test_a_candidate_with_more_prompts_than_the_baseline_is_compared_on_the_baselines(tmp_path):
    board = hand_made_board(BASELINE[:5])
    base, new = write(tmp_path, "base.json", board), write(tmp_path, "new.json", hand_made_board(BASELINE))
    assert compare(base, new, None, 0.02).comparisons[0].n_pairs == 5


def test_a_missing_file_is_unusable_input(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    result = compare(base, tmp_path / "nope.json", None, 0.02)
    assert result.exit_code == 2 and "nope.json: file not found" in result.error


def test_malformed_json_is_unusable_input(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    result = compare(base, broken, None, 0.02)
    assert result.exit_code == 2 and "not valid JSON" in result.error and "\n" not in result.error


def test_a_leaderboard_without_rows_is_unusable_input(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    other = write(tmp_path, "other.json", {"version": 1, "tasks": []})
    assert compare(base, other, None, 0.02).exit_code == 2


def test_a_metric_without_its_sample_field_is_unusable_input(tmp_path):
    board = hand_made_board(BASELINE)
    del board["rows"][0]["tasks"]["longbench_write_en_mini"]["metrics"]["S_l"]["field"]
    result = compare(write(tmp_path, "base.json", hand_made_board(BASELINE)), write(tmp_path, "bad.json", board))
    assert result.exit_code == 2 and "metrics['S_l'].field must be a non-empty string" in result.error


def test_no_common_task_is_unusable_input(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    other = write(tmp_path, "other.json", hand_made_board(BASELINE, task="longen_mini"))
    result = compare(base, other, None, 0.02)
    assert result.exit_code == 2 and "no common task" in result.error


def test_an_unknown_metric_is_unusable_input(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    assert compare(base, base, ["S_q"], 0.02).exit_code == 2


def test_run_directories_compare_like_leaderboards(tmp_path):
    longer = make_run_dir(tmp_path, *MODELS[3][:6], seed=3)
    shorter = make_run_dir(tmp_path, *MODELS[1][:6], seed=1)
    result = compare(longer, shorter, ["S_l"], 0.02)
    assert result.exit_code == 1
    assert {c.task for c in result.regressions} >= {"longbench_write_en_mini", "longwrite_ruler_mini"}
    assert compare(shorter, longer, ["S_l"], 0.02).exit_code == 0


def test_multi_row_leaderboards_are_matched_by_model_name(tmp_path):
    old = hand_made_board(BASELINE, model="a")
    old["rows"].append(hand_made_board(BASELINE, model="b")["rows"][0])
    new = hand_made_board(BASELINE, model="b")
    new["rows"].append(hand_made_board([s - 10 for s in BASELINE], model="a")["rows"][0])
    result = compare(write(tmp_path, "old.json", old), write(tmp_path, "new.json", new), None, 0.02)
    assert [(c.candidate_model, c.regression) for c in result.comparisons] == [("a", True), ("b", False)]


def test_main_returns_the_exit_code_and_prints_one_error_line(tmp_path, capsys):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    worse = write(tmp_path, "new.json", hand_made_board([s - 9 for s in BASELINE]))
    assert main(["--baseline", str(base), "--candidate", str(base)]) == 0
    assert main(["--baseline", str(base), "--candidate", str(worse), "--metric", "S_l", "--max-drop", "0.05"]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert main(["--baseline", str(base), "--candidate", str(tmp_path / "x.json")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "x.json: file not found" in error and "\n" not in error


def test_the_table_shows_each_comparison_with_its_verdict(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    worse = write(tmp_path, "new.json", hand_made_board([s - 9 for s in BASELINE]))
    console = Console(record=True, width=160)
    console.print(check_table(compare(base, worse, None, 0.02)))
    text = console.export_text()
    assert "longbench_write_en_mini" in text and "REGRESSION" in text and "-9" in text


@pytest.mark.parametrize("max_drop", ["nan", "inf", "-inf", "-0.1", "NaN"])
def test_a_max_drop_that_is_not_a_finite_fraction_is_unusable_input(tmp_path, capsys, max_drop):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    worse = write(tmp_path, "new.json", hand_made_board([s - 9 for s in BASELINE]))
    assert main(["--baseline", str(base), "--candidate", str(worse), f"--max-drop={max_drop}"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--max-drop must be a finite number >= 0" in error


def test_a_real_regression_still_exits_1(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    worse = write(tmp_path, "new.json", hand_made_board([s - 9 for s in BASELINE]))
    assert main(["--baseline", str(base), "--candidate", str(worse), "--max-drop", "0.02"]) == 1


def test_an_unexpected_failure_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    monkeypatch.setattr("leaderboard.check.paired_test", lambda *_, **__: 1 / 0)
    assert main(["--baseline", str(base), "--candidate", str(base)]) == 2
    error = capsys.readouterr().err
    assert error == "error: ZeroDivisionError: division by zero (--debug shows the traceback)\n"


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    monkeypatch.setattr("leaderboard.check.paired_test", lambda *_, **__: 1 / 0)
    assert main(["--debug", "--baseline", str(base), "--candidate", str(base)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("Traceback (most recent call last):") and "1 / 0" in error


def test_rich_markup_in_names_prints_literally_in_the_check_table(tmp_path):
    board = hand_made_board(BASELINE, model="[/bold]x[red]y[/red]", task="[bold]task[/]")
    worse = hand_made_board([s - 9 for s in BASELINE], model="[/bold]x[red]y[/red]", task="[bold]task[/]")
    for spec in (board, worse):
        row_task = spec["rows"][0]["tasks"]["[bold]task[/]"]
        row_task["metrics"]["[/bold]"] = row_task["metrics"].pop("S_l")
        row_task["primary"] = "[/bold]"
    result = compare(write(tmp_path, "a.json", board), write(tmp_path, "b.json", worse), None, 0.02)
    console = Console(record=True, width=200)
    console.print(check_table(result))
    text = console.export_text()
    assert "[/bold]x[red]y[/red]" in text and "[bold]task[/]" in text and "│ [/bold] " in text


RELIABLE = {"reliable": True, "reasons": [], "failures": 0, "n": 12, "failures_rate": 0.0,
            "sanity": {"truncated": {"rate": 0.92, "ci": [0.65, 0.99], "p_value": 0.003, "above_chance": True, "n": 12}},
            "agreement": None}
NOT_ABOVE_CHANCE = "sanity shuffled: original preferred at rate 0.55 over 10 pairs (p=0.38), not significantly above chance"
UNRELIABLE = RELIABLE | {"reliable": False, "reasons": [NOT_ABOVE_CHANCE]}


def judged_board(quality: list[float], quality_trust: dict | None, model: str = "sl-iter2") -> dict:
    """``hand_made_board`` with the same S_l everywhere plus a judge quality per prompt and its quality_trust."""
    board = hand_made_board(BASELINE, model=model)
    entry = board["rows"][0]["tasks"]["longbench_write_en_mini"]
    for sample, value in zip(entry["samples"], quality):
        sample["quality"] = value
    entry["metrics"]["quality"] = entry["metrics"]["S_l"] | {"field": "quality", "value": sum(quality) / len(quality)}
    entry |= {"judge_failures": 0, "quality_trust": quality_trust}
    return board


QUALITY = [6.5, 7.0, 5.5, 8.0, 6.0, 7.5, 6.0, 7.0, 5.0, 6.5, 7.5, 6.0]
WORSE_QUALITY = [q - 2 - 0.05 * i for i, q in enumerate(QUALITY)]


def test_a_big_drop_in_reliable_judge_quality_is_a_regression(tmp_path):
    base = write(tmp_path, "base.json", judged_board(QUALITY, RELIABLE))
    worse = write(tmp_path, "new.json", judged_board(WORSE_QUALITY, RELIABLE))
    assert main(["--baseline", str(base), "--candidate", str(worse), "--metric", "quality"]) == 1


def test_a_big_drop_in_unreliable_judge_quality_is_not_gated_and_says_why(tmp_path, capsys):
    base = write(tmp_path, "base.json", judged_board(QUALITY, RELIABLE))
    worse = write(tmp_path, "new.json", judged_board(WORSE_QUALITY, UNRELIABLE))
    assert main(["--baseline", str(base), "--candidate", str(worse), "--metric", "quality"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "│ not gated │" in out and "no regression" in out
    assert ("not gated (a significant drop, unreliable judge): longbench_write_en_mini quality (judge) (sl-iter2): "
            f"candidate sl-iter2: {NOT_ABOVE_CHANCE}") in out


def test_an_unreliable_baseline_judge_is_not_gated_either(tmp_path):
    base = write(tmp_path, "base.json", judged_board(QUALITY, UNRELIABLE))
    worse = write(tmp_path, "new.json", judged_board(WORSE_QUALITY, RELIABLE))
    result = compare(base, worse, ["quality"], 0.02)
    (comparison,) = result.ungated
    assert result.exit_code == 0 and comparison.significant_drop
    assert comparison.unreliable == (f"baseline sl-iter2: {NOT_ABOVE_CHANCE}",)


def test_an_unreliable_judge_does_not_stop_a_length_regression(tmp_path):
    base = write(tmp_path, "base.json", judged_board(QUALITY, UNRELIABLE))
    worse = judged_board(QUALITY, UNRELIABLE)
    for sample, score in zip(worse["rows"][0]["tasks"]["longbench_write_en_mini"]["samples"], BASELINE):
        sample["score"] = score - 9
    result = compare(base, write(tmp_path, "new.json", worse), None, 0.02)
    assert result.exit_code == 1 and [c.metric for c in result.regressions] == ["S_l"]


def test_quality_of_an_older_leaderboard_without_quality_trust_is_not_gated(tmp_path):
    base = write(tmp_path, "base.json", judged_board(QUALITY, None))
    worse = write(tmp_path, "new.json", judged_board(WORSE_QUALITY, None))
    result = compare(base, worse, ["quality"], 0.02)
    assert result.exit_code == 0
    assert result.ungated[0].unreliable[1] == "candidate sl-iter2: judge not validated (no sanity check)"


def lower_quality(run_dir, by: float) -> None:
    path = run_dir / "judgements.json"
    judgements = json.loads(path.read_text(encoding="utf-8"))
    for sample in judgements["tasks"]["longbench_write_en_mini"]["samples"]:
        if sample["quality"] is not None:
            sample["quality"] -= by
    path.write_text(json.dumps(judgements), encoding="utf-8")


def test_run_directories_without_a_sanity_check_do_not_gate_on_quality(tmp_path, capsys):
    base = make_run_dir(tmp_path / "base", *MODELS[2][:6], seed=2)
    worse = make_run_dir(tmp_path / "worse", *MODELS[2][:6], seed=2)
    lower_quality(worse, 10.0)
    assert main(["--baseline", str(base), "--candidate", str(worse), "--metric", "quality"]) == 0
    assert "judge not validated (no sanity check)" in " ".join(capsys.readouterr().out.split())


def test_run_directories_with_a_validated_judge_gate_on_quality(tmp_path):
    sanity = {"truncated": {"rate": 0.9, "ci": [0.6, 0.98], "p_value": 0.002, "above_chance": True, "n": 14}}
    runs = [make_run_dir(tmp_path / side, *MODELS[2][:6], seed=2) for side in ("base", "worse")]
    for run in runs:
        path = run / "judgements.json"
        judgements = json.loads(path.read_text(encoding="utf-8"))
        judgements["tasks"]["longbench_write_en_mini"]["trust"] = {"sanity": sanity, "agreement": None}
        path.write_text(json.dumps(judgements), encoding="utf-8")
    lower_quality(runs[1], 10.0)
    assert main(["--baseline", str(runs[0]), "--candidate", str(runs[1]), "--metric", "quality"]) == 1


def test_markup_in_a_reason_prints_literally_in_the_check_output(tmp_path):
    reason = "[/bold] judge [red]x[/red] broke"
    base = write(tmp_path, "base.json", judged_board(QUALITY, RELIABLE, model="[bold]m[/]"))
    worse = write(tmp_path, "new.json", judged_board(WORSE_QUALITY, RELIABLE | {"reliable": False, "reasons": [reason]},
                                                     model="[bold]m[/]"))
    console = Console(record=True, width=300)
    print_check(compare(base, worse, ["quality"], 0.02), console)
    assert f"([bold]m[/]): candidate [bold]m[/]: {reason}" in console.export_text()


def test_the_top_level_debug_flag_reaches_check(tmp_path, capsys, monkeypatch):
    from harness.cli import main as selflengthen

    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    monkeypatch.setattr("leaderboard.check.paired_test", lambda *_, **__: 1 / 0)
    assert selflengthen(["--debug", "check", "--baseline", str(base), "--candidate", str(base)]) == 2
    assert capsys.readouterr().err.startswith("Traceback (most recent call last):")


# --- what is gated: each task's primary metric, Holm-corrected across tasks ---------------------------------------

def two_task_board(first: list[float], second: list[float]) -> dict:
    """``hand_made_board`` with a second task (S_l its primary metric too) beside the first."""
    board = hand_made_board(first)
    other = hand_made_board(second, task="longwrite_ruler_mini")
    board["rows"][0]["tasks"] |= other["rows"][0]["tasks"]
    board["tasks"] += other["tasks"]
    return board


# Twelve prompts, ten lower and two higher: the exact Wilcoxon p is 0.034, under 0.05 alone, not after Holm over two.
BORDERLINE = [s - d if d not in (1, 11) else s + d for s, d in zip(BASELINE, range(1, 13))]


def test_a_borderline_drop_on_the_only_task_is_a_regression(tmp_path):
    base = write(tmp_path, "base.json", hand_made_board(BASELINE))
    result = compare(base, write(tmp_path, "new.json", hand_made_board(BORDERLINE)), None, 0.02)
    (comparison,) = result.gated
    assert comparison.p == pytest.approx(0.0342, abs=1e-4) and comparison.p_holm == comparison.p
    assert result.exit_code == 1


def test_holm_correction_over_two_gated_tasks_lets_the_same_borderline_drop_pass(tmp_path):
    base = write(tmp_path, "base.json", two_task_board(BASELINE, BASELINE))
    result = compare(base, write(tmp_path, "new.json", two_task_board(BORDERLINE, BASELINE)), None, 0.02)
    first, second = result.gated
    assert first.p == pytest.approx(0.0342, abs=1e-4) and first.p_holm == pytest.approx(2 * first.p)
    assert second.p == second.p_holm == 1.0
    assert result.exit_code == 0 and not first.regression


# Twenty pass/fail prompts, twelve failed by both, seven lost and one gained: most pairs tie at zero.
PASS_FAIL_BASE = [1.0] * 8 + [0.0] * 12
PASS_FAIL_WORSE = [1.0] + [0.0] * 7 + [0.0] * 11 + [1.0]


def test_the_gate_takes_scipys_wilcoxon_with_pratts_zeros_where_the_leaderboard_splits_them(tmp_path):
    """Zero differences given to neither sign (Pratt): the gate flags this fall; splitting them between the signs,
    as the leaderboard's vs-base test does, would not at 0.05."""
    base = write(tmp_path, "base.json", hand_made_board(PASS_FAIL_BASE))
    result = compare(base, write(tmp_path, "new.json", hand_made_board(PASS_FAIL_WORSE)), None, 0.02)
    (comparison,) = result.gated
    diffs = [after - before for before, after in zip(PASS_FAIL_BASE, PASS_FAIL_WORSE)]
    assert comparison.p == pytest.approx(stats.wilcoxon(diffs, zero_method="pratt").pvalue, rel=1e-9)
    assert result.exit_code == 1
    split = paired_test(dict(enumerate(PASS_FAIL_BASE)), dict(enumerate(PASS_FAIL_WORSE)))
    assert split.p > 0.05 > comparison.p


def test_holm_adjusted_p_values_follow_the_step_down_definition():
    assert holm_adjusted([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm_adjusted([0.4, 0.3]) == pytest.approx([0.6, 0.6])
    assert holm_adjusted([0.9, 0.8, 0.7]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm_adjusted([]) == []


def longen_board(about: list[float], below: list[float]) -> dict:
    """A LonGen-like row: `overall` (the primary metric) over every prompt, `about` and `below` over their own."""
    board = hand_made_board(about + below, task="longen_mini")
    entry = board["rows"][0]["tasks"]["longen_mini"]
    for sample in entry["samples"]:
        sample["type"] = "about" if sample["doc_id"] < len(about) else "below"
    overall, words = entry["metrics"]["S_l"], entry["metrics"]["words"]
    entry["metrics"] = {"overall": overall, "about": overall | {"type": "about"}, "below": overall | {"type": "below"},
                        "words": words}
    entry["primary"] = "overall"
    return board


ABOUT = [s / 100 for s in BASELINE]
BELOW = [1 - s / 100 for s in BASELINE]


def test_a_drop_in_a_secondary_metric_is_reported_not_gated(tmp_path, capsys):
    """About drops, below rises as much: the primary overall holds, so the check passes and shows the drop."""
    base = write(tmp_path, "base.json", longen_board(ABOUT, BELOW))
    moved = longen_board([a - 0.2 - 0.01 * i for i, a in enumerate(ABOUT)],
                         [b + 0.2 + 0.01 * i for i, b in enumerate(BELOW)])
    new = write(tmp_path, "new.json", moved)
    result = compare(base, new, None, 0.02)
    about = next(c for c in result.comparisons if c.metric == "about")
    assert [c.metric for c in result.gated] == ["overall"] and result.gated[0].p > 0.5
    assert not about.selected and about.significant_drop and about.p_holm is None and not about.regression
    assert result.exit_code == 0
    assert main(["--baseline", str(base), "--candidate", str(new)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "│ reported │" in out and "gated: each task's primary metric, 1 comparison(s), paired Wilcoxon (Pratt's zeros), Holm-corrected" in out


def test_naming_a_metric_gates_it_instead_of_the_primary(tmp_path, capsys):
    base = write(tmp_path, "base.json", longen_board(ABOUT, BELOW))
    new = write(tmp_path, "new.json", longen_board([a - 0.2 - 0.01 * i for i, a in enumerate(ABOUT)],
                                                   [b + 0.2 + 0.01 * i for i, b in enumerate(BELOW)]))
    result = compare(base, new, ["about"], 0.02)
    assert [c.metric for c in result.gated] == ["about"] and [c.metric for c in result.regressions] == ["about"]
    assert next(c for c in result.comparisons if c.metric == "overall").selected is False
    assert main(["--baseline", str(base), "--candidate", str(new), "--metric", "about"]) == 1
    assert "gated: metric(s) about (named with --metric)" in " ".join(capsys.readouterr().out.split())


def test_a_board_whose_tasks_declare_no_primary_metric_is_unusable_input(tmp_path):
    board = hand_made_board(BASELINE)
    board["rows"][0]["tasks"]["longbench_write_en_mini"]["primary"] = None
    path = write(tmp_path, "old.json", board)
    result = compare(path, path, None, 0.02)
    assert result.exit_code == 2 and "no common task with shared prompts for its primary metric" in result.error
    assert compare(path, path, ["S_l"], 0.02).exit_code == 0


# --- where the primary metric comes from: the task YAML, through scores.json into leaderboard.json ----------------

def test_every_task_declares_a_primary_metric_its_scorer_reports():
    for task, family in TASK_FAMILIES.items():
        scored = score_predictions(task, [])
        assert scored["primary_metric"] == primary_metric(task, family)
        assert primary_metric(task, family) in scored, task
    assert primary_metric("longen_mini", "longen") == "overall"
    assert primary_metric("longbench_write_en_mini", "longbench_write") == "S_l"
    assert primary_metric("longwrite_ruler", "longwrite_ruler") == "S_l"


def longen_run(root, primary=None):
    """A run directory of the real scorer on hand-made LonGen rows; ``primary`` overrides its declaration."""
    rows = [{"type": kind, "constraint": f"{kind} 100 words" if kind != "range" else "100-200 words",
             "query": f"Write {kind} 100 words.", "response": " ".join(["word"] * (60 + 20 * i))}
            for i, kind in enumerate(["about", "range", "above", "below"] * 3)]
    scored = score_predictions("longen_mini", rows)
    if primary is not None:
        scored["primary_metric"] = primary
    out = root / "run"
    write_json_atomically(out / "scores.json", {"model": "m", "tasks": {"longen_mini": scored}})
    write_json_atomically(out / "run.json", {"model": "m", "arm": "base", "iteration": None, "train_stats": None,
                                         "tasks": ["longen_mini"]})
    return out


def test_the_declared_primary_metric_reaches_leaderboard_json(tmp_path):
    board = build_leaderboard([longen_run(tmp_path / "a")], base=None)
    assert board["rows"][0]["tasks"]["longen_mini"]["primary"] == "overall"
    board = build_leaderboard([longen_run(tmp_path / "b", primary="below")], base=None)
    assert board["rows"][0]["tasks"]["longen_mini"]["primary"] == "below"
    assert [c.metric for c in compare(tmp_path / "b" / "run", tmp_path / "b" / "run").gated] == ["below"]


def test_a_primary_metric_that_is_not_a_string_is_unusable_input(tmp_path):
    run = longen_run(tmp_path, primary=["overall"])
    result = compare(run, run)
    assert result.exit_code == 2
    assert "tasks['longen_mini'].primary_metric must be a string or null, got ['overall']" in result.error
