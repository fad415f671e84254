"""The check gates each metric in its own direction: a higher-is-better score regresses when it falls, a
lower-is-better one (repeated 10-grams, ended at cap) when it rises; a metric with no direction is not gated."""

from __future__ import annotations

from rich.console import Console

from infra.journal import write_json_atomically
from leaderboard.check import check_table, compare, main
from leaderboard.render_markdown import render_markdown
from tests.leaderboard_boards import BASELINE, hand_made_board

TASK = "longbench_write_en_mini"
LOOPING = [0.1 + 0.04 * i for i in range(len(BASELINE))]  # the baseline's repeated 10-gram share per prompt


def board(scores: list[float], repeated: list[float]) -> dict:
    """A one-row board with S_l (higher is better) and repeated 10-grams (lower is better) per prompt."""
    made = hand_made_board(scores)
    entry = made["rows"][0]["tasks"][TASK]
    for sample, share in zip(entry["samples"], repeated):
        sample["repeated_10gram_share"] = share
    entry["metrics"]["repeated_10gram_share"] = entry["metrics"]["S_l"] | {
        "field": "repeated_10gram_share", "higher_is_better": False, "value": sum(repeated) / len(repeated)}
    return made


def paths(tmp_path, candidate: dict):
    write_json_atomically(tmp_path / "base.json", board(BASELINE, LOOPING))
    write_json_atomically(tmp_path / "new.json", candidate)
    return tmp_path / "base.json", tmp_path / "new.json"


def more_looping() -> list[float]:
    return [r + 0.2 + 0.01 * i for i, r in enumerate(LOOPING)]


def less_looping() -> list[float]:
    return [r - 0.08 - 0.001 * i for i, r in enumerate(LOOPING)]


def test_a_lower_is_better_metric_that_rises_beyond_tolerance_is_a_regression(tmp_path):
    base, new = paths(tmp_path, board(BASELINE, more_looping()))
    result = compare(base, new, ["repeated_10gram_share"], 0.02)
    assert result.exit_code == 1
    (regression,) = result.regressions
    assert regression.metric == "repeated_10gram_share" and regression.drop > 0.2


def test_a_lower_is_better_metric_that_falls_passes(tmp_path):
    base, new = paths(tmp_path, board(BASELINE, less_looping()))
    result = compare(base, new, ["repeated_10gram_share"], 0.0)
    (looping,) = result.gated
    assert result.exit_code == 0 and looping.drop < 0 and looping.p_holm < 0.05


def test_a_higher_is_better_metric_that_falls_is_the_only_regression_when_looping_falls_beside_it(tmp_path):
    base, new = paths(tmp_path, board([s - 9 - 0.1 * i for i, s in enumerate(BASELINE)], less_looping()))
    result = compare(base, new, ["S_l", "repeated_10gram_share"], 0.02)
    assert [c.metric for c in result.regressions] == ["S_l"] and result.exit_code == 1


def test_a_higher_is_better_metric_that_rises_passes_and_a_rise_in_looping_beside_it_fails(tmp_path):
    base, new = paths(tmp_path, board([s + 5 for s in BASELINE], more_looping()))
    result = compare(base, new, ["S_l", "repeated_10gram_share"], 0.02)
    assert [(c.metric, c.regression) for c in result.comparisons] == [("S_l", False), ("repeated_10gram_share", True)]


def test_the_check_table_shows_which_way_is_better_and_the_candidate_minus_baseline(tmp_path):
    base, new = paths(tmp_path, board([s + 5 for s in BASELINE], more_looping()))
    console = Console(record=True, width=200)
    console.print(check_table(compare(base, new, ["S_l", "repeated_10gram_share"], 0.02)))
    lines = console.export_text().splitlines()
    (score,) = [line for line in lines if "S_l" in line]
    (looping,) = [line for line in lines if "repeated 10-grams" in line]
    assert "higher" in score and "+5" in score and "ok" in score
    assert "lower" in looping and "+0.255" in looping and "REGRESSION" in looping


def test_a_metric_without_a_direction_cannot_be_gated(tmp_path, capsys):
    base, new = paths(tmp_path, board(BASELINE, LOOPING))
    assert main(["--baseline", str(base), "--candidate", str(new), "--metric", "words"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "words" in error and "no direction" in error


def test_a_lower_is_better_metric_is_reported_in_its_direction_when_not_gated(tmp_path):
    base, new = paths(tmp_path, board(BASELINE, more_looping()))
    result = compare(base, new, None, 0.02)
    looping = next(c for c in result.comparisons if c.metric == "repeated_10gram_share")
    assert not looping.selected and looping.significant_drop and result.exit_code == 0


def test_the_iteration_table_says_whether_a_significant_change_is_better_or_worse():
    """Markdown's iteration-over-iteration table: S_l up is better, repeated 10-grams up is worse."""
    made = board(BASELINE, LOOPING)
    metrics = made["rows"][0]["tasks"][TASK]["metrics"]
    for name, diff in (("S_l", 5.0), ("repeated_10gram_share", 0.2)):
        metrics[name]["vs_previous"] = {"model": "sl-iter1", "diff": diff, "p": 0.001, "n_pairs": 12,
                                        "significant": True}
    rows = [line for line in render_markdown(made).splitlines() if line.startswith("|") and "sl-iter1" in line]
    (score,) = [line for line in rows if "S_l" in line]
    (looping,) = [line for line in rows if "repeated 10-grams" in line]
    assert "▲ +5.00 (better)" in score and "▲ +20 pts (worse)" in looping
