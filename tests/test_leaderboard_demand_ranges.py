"""Length following by demand range (#38 item 3): each range's primary score and mean words, with intervals and
paired tests, in leaderboard.json, every view and the regression check."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest
from rich.console import Console

from harness.cli import main as selflengthen
from leaderboard.board import checked_leaderboard, metric_values
from leaderboard.build import build_leaderboard
from leaderboard.check import compare_boards
from leaderboard.demand import demand_spec, holds
from leaderboard.errors import LeaderboardError
from leaderboard.format import task_metrics
from leaderboard.render_html import render_html
from leaderboard.render_markdown import render_markdown
from leaderboard.render_terminal import print_leaderboard
from leaderboard.stats import paired_test
from tests.leaderboard_runs import MODELS, make_experiment

TASK = "longbench_write_en_mini"
PUBLISHED = [[0, 500], [500, 2000], [2000, 4000], [4000, 20000]]  # the hand-made runs' demands are unscaled
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    return make_experiment(tmp_path_factory.mktemp("ranges"))


@pytest.fixture(scope="module")
def board(runs) -> dict:
    return build_leaderboard(runs, None, {TASK: PUBLISHED})


def _row(board: dict, model: str) -> dict:
    return next(row for row in board["rows"] if row["id"] == model)


def test_a_range_holds_its_low_end_and_only_the_last_holds_its_high_end():
    first, last = demand_spec([0, 500], last=False), demand_spec([4000, 20000], last=True)
    assert [holds(first, words) for words in (0, 499.5, 500, None)] == [True, True, False, False]
    assert [holds(last, words) for words in (3999, 4000, 20000, 20001)] == [False, True, True, False]


def test_each_range_scores_only_the_prompts_whose_demand_falls_in_it(board):
    entry = _row(board, "smollm2-135m")["tasks"][TASK]
    short = [s["score"] for s in entry["samples"] if s["required_words"] < 500]
    spec = entry["metrics"]["S_l@[0,500)"]
    assert (spec["n"], spec["value"], spec["demand"]) == (2, pytest.approx(sum(short) / 2),
                                                          {"low": 0, "high": 500, "high_included": False})
    assert [entry["metrics"][f"words@{r}"]["n"] for r in ("[0,500)", "[500,2000)", "[2000,4000)", "[4000,20000]")] \
        == [2, 8, 3, 2]


def test_a_range_is_tested_against_the_base_over_that_ranges_prompts_only(board):
    base, row = _row(board, "smollm2-135m")["tasks"][TASK], _row(board, "sl-iter2")["tasks"][TASK]
    in_range = lambda entry: {d: v for d, v in metric_values(entry, "S_l").items()  # noqa: E731
                              if 500 <= next(s["required_words"] for s in entry["samples"] if s["doc_id"] == d) < 2000}
    expected = paired_test(in_range(base), in_range(row))
    assert row["metrics"]["S_l@[500,2000)"]["vs_base"] == expected.to_json()
    assert expected.n_pairs == 8


def test_a_task_without_declared_ranges_gets_no_range_metrics(board):
    assert not [name for name in _row(board, "sl-iter2")["tasks"]["longen_mini"]["metrics"] if "@" in name]


def test_range_metrics_stay_out_of_the_task_table_and_the_checks_report(board):
    assert not [name for name in task_metrics(board, TASK) if "@" in name]
    result = compare_boards(board, board)
    assert result.comparisons and not [c for c in result.comparisons if "@" in c.metric]


def test_the_check_gates_on_a_named_range(board):
    result = compare_boards(board, board, ["S_l@[0,500)"])
    assert {(c.metric, c.n_pairs) for c in result.gated} == {("S_l@[0,500)", 2)}
    assert result.exit_code == 0


def test_selflengthen_check_names_a_range_of_run_directories_from_the_task_yaml(runs, capsys):
    code = selflengthen(["check", "--baseline", str(runs[0]), "--candidate", str(runs[0]), "--metric",
                         "S_l@[400,2000]"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0 and "gated: metric(s) S_l@[400,2000] (named with --metric), 1 comparison(s)" in out


def test_every_view_shows_each_rows_score_and_words_per_range_with_the_base_test(board):
    checked = checked_leaderboard(Path("leaderboard.json"), json.loads(json.dumps(board)))
    markdown = render_markdown(checked).split("By demanded length (")[1].split("\n\n## ")[0]
    assert markdown.startswith("\\[0,500) 2 · \\[500,2000) 8 · \\[2000,4000) 3 · \\[4000,20000\\] 2 prompts)")
    assert "| model | S_l \\[0,500) | mean words \\[0,500) | S_l \\[500,2000)" in markdown
    assert all(f"| {model}" in markdown or f"**{model}**" in markdown for model, *_ in MODELS)
    html = render_html(checked)
    assert '<table class="sortable demand">' in html and "<th>S_l [4000,20000]</th>" in html
    console = Console(record=True, width=400)
    print_leaderboard(checked, console)
    terminal = console.export_text()
    assert f"{TASK} by demanded length" in terminal and "mean words [2000,4000)" in terminal


def test_the_committed_small_run_shows_the_final_arms_short_demand_deficit_with_its_p_value(tmp_path, capsys):
    runs = sorted(glob.glob(str(REPO / "docs/results/small/runs/*")))
    assert selflengthen(["leaderboard", *runs, "--out", str(tmp_path)]) == 0
    board = json.loads((tmp_path / "leaderboard.json").read_text(encoding="utf-8"))
    final = _row(board, "self_lengthen/final")["tasks"]["longbench_write_en_small"]["metrics"]["S_l@[0,50)"]
    assert (round(final["value"], 1), round(final["vs_base"]["p"], 3), final["vs_base"]["significant"]) == (
        11.2, 0.031, True)
    assert all("S_l@[400,2000]" in row["tasks"]["longbench_write_en_small"]["metrics"] for row in board["rows"])
    markdown = (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    final_line = next(line for line in markdown.split("By demanded length")[1].splitlines()
                      if line.startswith("| self_lengthen/final"))
    assert "11.2 [0.00, 33.6] ▼ p=0.031" in final_line


def test_a_range_metric_whose_demand_is_not_a_range_is_refused_naming_the_field(board):
    broken = json.loads(json.dumps(board))
    broken["rows"][0]["tasks"][TASK]["metrics"]["S_l@[0,500)"]["demand"]["high"] = "500"
    with pytest.raises(LeaderboardError, match=r"metrics\['S_l@\[0,500\)'\]\.demand\.high must be a finite number"):
        checked_leaderboard(Path("leaderboard.json"), broken)
