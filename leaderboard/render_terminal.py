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
    TRUST_COLUMNS,
    TRUST_LEGEND,
    UNRELIABLE,
    agreement_text,
    failures_text,
    interval,
    iteration,
    judged,
    label,
    marker,
    number,
    sanity_parts,
    sanity_text,
    task_metrics,
    unreliable_metric,
    verdict_text,
)
from leaderboard.trust import task_trust


def _styled(entry: dict, metric: str) -> Text:
    spec = entry["metrics"].get(metric)
    if spec is None:
        return Text("–")
    sign = marker(spec)
    text = Text.assemble(number(spec["value"]), " ", (interval(spec), "dim"))
    if sign:
        text.append(" " + sign, style="green" if sign.startswith("▲") else "red")
    if unreliable_metric(entry, metric):
        text.append(" " + UNRELIABLE, style="yellow")
    return text


def _sanity(trust: dict | None) -> Text:
    """Each degradation's rate, red when not significantly above chance; names from judgements.json stay text."""
    parts = sanity_parts(trust)
    if not parts:
        return Text(sanity_text(trust))
    text = Text()
    for i, (part, passed) in enumerate(parts):
        text.append(", " * (i > 0))
        text.append(part + ("" if passed else " ✗"), style=None if passed else "red")
    return text


def _trust_cells(entry: dict) -> list[Text]:
    trust = task_trust(entry)
    verdict = Text(verdict_text(trust), style="yellow" if trust and not trust["reliable"] else "")
    return [Text(failures_text(trust)), _sanity(trust), Text(agreement_text(trust)), verdict]


def _model(row: dict) -> Text:
    if row.get("is_base"):
        return Text.assemble((row["model"], "bold"), " (base)")
    return Text(row["model"])


def leaderboard_tables(board: dict) -> list[Table]:
    """One rich Table per task: rows are checkpoints, columns the task's metrics with intervals."""
    tables = []
    for task in board["tasks"]:
        metrics = task_metrics(board, task)
        has_judge = judged(board, task)
        caption = Text(LEGEND + (f". {TRUST_LEGEND}" if has_judge else ""))
        table = Table(title=Text(task), caption=caption, title_justify="left")
        for name in ["model", "arm", "iter", "n"] + [label(m) for m in metrics] + list(TRUST_COLUMNS) * has_judge:
            table.add_column(Text(name), justify="left" if name in ("model", "arm") + TRUST_COLUMNS[1:] else "right")
        for row in board["rows"]:
            entry = row["tasks"].get(task)
            if entry is None:
                continue
            table.add_row(_model(row), Text(row.get("arm") or "–"), Text(iteration(row)), Text(str(entry["n"])),
                          *[_styled(entry, m) for m in metrics], *(_trust_cells(entry) if has_judge else []))
        tables.append(table)
    return tables


def print_leaderboard(board: dict, console: Console | None = None) -> None:
    console = console or Console()
    for table in leaderboard_tables(board):
        console.print(table)
