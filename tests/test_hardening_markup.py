"""User and model text shown through rich is never read as markup: `[/bold]` is printed, not parsed."""

from __future__ import annotations

import io

from rich.console import Console

from harness import cli
from harness.tables import print_scores

MARKUP = "[/bold] [red]x[/red] \\"


def _console() -> Console:
    return Console(file=io.StringIO(), width=300, color_system=None)


def test_score_table_shows_markup_in_model_task_and_metric_names_verbatim():
    console = _console()
    scores = {"model": f"model{MARKUP}", "tasks": {f"task{MARKUP}": {"n": 1, f"metric{MARKUP}": 0.5, "samples": []}}}
    print_scores(scores, console)
    text = console.file.getvalue()
    assert f"model{MARKUP}" in text and f"task{MARKUP}" in text and f"metric{MARKUP}=0.500" in text


def test_error_printer_shows_markup_in_the_message_verbatim(monkeypatch):
    console = _console()
    monkeypatch.setattr(cli, "console", console)
    cli._print_error(f"config file not found: /tmp/{MARKUP}.yaml")
    assert console.file.getvalue() == f"error: config file not found: /tmp/{MARKUP}.yaml\n"


def test_unexpected_exception_with_markup_is_one_escaped_line_with_exit_1(monkeypatch):
    console = _console()
    monkeypatch.setattr(cli, "console", console)

    def explode(args):
        raise RuntimeError(f"bug near {MARKUP}")

    monkeypatch.setattr(cli, "cmd_score", explode)
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)  # leave pytest's SIGTERM handling alone
    code = cli.main(["score", "--task", "longen", "--input", "x", "--output", "y"])
    assert code == 1
    assert console.file.getvalue() == f"error: RuntimeError: bug near {MARKUP} (--debug shows the traceback)\n"
