"""Rich tables for the terminal: what a run scored, at a glance."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

_NOT_METRICS = {"task", "n", "samples"}


def print_scores(scores: dict[str, Any], console: Console | None = None) -> None:
    """One row per task: n, each aggregate metric, and the mean response length in words."""
    console = console or Console()
    table = Table(title=f"scores: {scores.get('model', '')}")
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
        table.add_row(task, str(entry.get("n", len(words))), metrics, mean_words)
    console.print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
