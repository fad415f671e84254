"""Rich tables for the terminal: what a run scored, at a glance.

Model names, task names and values come from users' files: they go into the table as `Text`,
never as rich markup, so a name like `[/bold]` is shown instead of crashing the view.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

_NOT_METRICS = {"task", "n", "samples"}


def print_scores(scores: dict[str, Any], console: Console | None = None) -> None:
    """One row per task: n, each aggregate metric, and the mean response length in words."""
    console = console or Console()
    table = Table(title=Text(f"scores: {scores.get('model', '')}"))
    table.add_column("task")
    table.add_column("n", justify="right")
    table.add_column("metrics")
    table.add_column("mean words", justify="right")
    for task, entry in scores["tasks"].items():
        metrics = ", ".join(
            f"{k}={_fmt(v)}" for k, v in entry.items() if k not in _NOT_METRICS and not isinstance(v, (dict, list))
        )
        words = [s.get("words", 0) for s in entry.get("samples", [])]
        mean_words = f"{sum(words) / len(words):.0f}" if words else "-"
        table.add_row(Text(task), str(entry.get("n", len(words))), Text(metrics), mean_words)
    console.print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
