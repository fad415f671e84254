"""Rich markup in model, arm and task names prints as itself in the terminal leaderboard (rich parses str cells)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from leaderboard.build import build_leaderboard
from leaderboard.render_terminal import print_leaderboard
from tests.leaderboard_runs import MODELS, make_run_dir

MARKUP = ["[/bold]", "[red]x[/red]", "[bold]b[/]", "[link=javascript:alert(1)]l[/link]", "\\[escaped]\\"]


@pytest.fixture(scope="module")
def terminal_text(tmp_path_factory) -> str:
    """The printed leaderboard of a base and one iteration whose names (model, arm, a task) are markup."""
    root = tmp_path_factory.mktemp("markup")
    runs = []
    for i, (model, arm, iteration, reach, quality, stats) in enumerate(MODELS[:2]):
        run_dir = make_run_dir(root, model, arm, iteration, reach, quality, stats, seed=i)
        run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        run |= {"model": MARKUP[i] + f" {i}", "arm": MARKUP[2 + i]}
        (run_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")
        scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
        scores["tasks"][MARKUP[4]] = scores["tasks"].pop("longen_mini")
        (run_dir / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
        runs.append(run_dir)
    board = build_leaderboard(runs, base=MARKUP[0] + " 0")
    console = Console(record=True, width=300)
    print_leaderboard(board, console)
    return console.export_text()


def test_markup_in_model_names_prints_literally(terminal_text):
    assert "[/bold] 0 (base)" in terminal_text and "[red]x[/red] 1" in terminal_text


def test_markup_in_arm_names_prints_literally(terminal_text):
    assert "[bold]b[/]" in terminal_text and "[link=javascript:alert(1)]l[/link]" in terminal_text


def test_markup_in_task_names_prints_literally(terminal_text):
    assert "\\[escaped]\\" in terminal_text
