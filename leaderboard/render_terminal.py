"""The leaderboard as rich tables in the terminal, read from leaderboard.json only."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from leaderboard.format import LEGEND, interval, iteration, judged, label, marker, number, task_metrics


def _styled(spec: dict | None) -> str:
    if spec is None:
        return "–"
    sign = marker(spec)
    color = "green" if sign.startswith("▲") else "red"
    text = f"{number(spec['value'])} [dim]{interval(spec)}[/dim]"
    return text + (f" [{color}]{sign}[/{color}]" if sign else "")


def leaderboard_tables(board: dict) -> list[Table]:
    """One rich Table per task: rows are checkpoints, columns the task's metrics with intervals."""
    tables = []
    for task in board["tasks"]:
        metrics = task_metrics(board, task)
        table = Table(title=task, caption=LEGEND, title_justify="left")
        has_judge = judged(board, task)
        for name in ["model", "arm", "iter", "n"] + [label(m) for m in metrics] + ["judge failures"] * has_judge:
            table.add_column(name, justify="left" if name in ("model", "arm") else "right")
        for row in board["rows"]:
            entry = row["tasks"].get(task)
            if entry is None:
                continue
            model = f"[bold]{row['model']}[/bold] (base)" if row.get("is_base") else row["model"]
            table.add_row(model, row.get("arm") or "–", iteration(row), str(entry["n"]),
                          *[_styled(entry["metrics"].get(m)) for m in metrics],
                          *[number(entry.get("judge_failures"))] * has_judge)
        tables.append(table)
    return tables


def print_leaderboard(board: dict, console: Console | None = None) -> None:
    console = console or Console()
    for table in leaderboard_tables(board):
        console.print(table)
