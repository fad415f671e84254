"""The leaderboard as rich tables in the terminal, read from leaderboard.json only.

Names come from users and models, so every one goes in as a rich Text, never as markup: ``[/bold]`` in a
model name prints as itself.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from leaderboard.format import (
    LEGEND,
    interval,
    iteration,
    judged,
    label,
    marker,
    number,
    task_metrics,
)


def _styled(spec: dict | None) -> Text:
    if spec is None:
        return Text("–")
    sign = marker(spec)
    text = Text.assemble(number(spec["value"]), " ", (interval(spec), "dim"))
    if sign:
        text.append(" " + sign, style="green" if sign.startswith("▲") else "red")
    return text


def _model(row: dict) -> Text:
    if row.get("is_base"):
        return Text.assemble((row["model"], "bold"), " (base)")
    return Text(row["model"])


def leaderboard_tables(board: dict) -> list[Table]:
    """One rich Table per task: rows are checkpoints, columns the task's metrics with intervals."""
    tables = []
    for task in board["tasks"]:
        metrics = task_metrics(board, task)
        table = Table(title=Text(task), caption=Text(LEGEND), title_justify="left")
        has_judge = judged(board, task)
        for name in ["model", "arm", "iter", "n"] + [label(m) for m in metrics] + ["judge failures"] * has_judge:
            table.add_column(Text(name), justify="left" if name in ("model", "arm") else "right")
        for row in board["rows"]:
            entry = row["tasks"].get(task)
            if entry is None:
                continue
            table.add_row(_model(row), Text(row.get("arm") or "–"), Text(iteration(row)), Text(str(entry["n"])),
                          *[_styled(entry["metrics"].get(m)) for m in metrics],
                          *[Text(number(entry.get("judge_failures")))] * has_judge)
        tables.append(table)
    return tables


def print_leaderboard(board: dict, console: Console | None = None) -> None:
    console = console or Console()
    for table in leaderboard_tables(board):
        console.print(table)
