"""The leaderboard as rich tables in the terminal, read from leaderboard.json only.

One table per task, then (where the task declares demand ranges) its primary score and words per range, and
(where the pairwise judge ran) its win rates. Where the console is wide enough, every metric with its interval
and p-value; where it is not (a log, 80 columns), compact tables: the primary score, length, degeneration and
quality, and the primary score per range, each value with its ▲/▼ only, and a pointer to leaderboard.md /
leaderboard.html for the rest. The judge's
reasons are listed once under each table and the verdict cells point to them by number.

Names come from users and models, so every one goes in as a rich Text, never as markup: ``[/bold]`` in a
model name prints as itself.
"""

from __future__ import annotations

import re

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from leaderboard.format import (
    COMPACT_LEGEND,
    DEGENERATION_LEGEND,
    DEMAND_LEGEND,
    LEGEND,
    PAIRWISE_COLUMNS,
    PAIRWISE_LEGEND,
    SHARES,
    SHORT_LABELS,
    TONE_LEGEND,
    TRUST_LEGEND,
    UNRELIABLE,
    UNRELIABLE_MARK,
    VERDICT,
    arrow,
    compact_metrics,
    demand_metrics,
    interval,
    iteration,
    judged,
    label,
    marker,
    pairwise_references,
    pairwise_rows,
    pairwise_texts,
    range_sizes,
    reason_notes,
    reason_numbers,
    task_metrics,
    tone,
    unreliable_metric,
    value_text,
    verdict_short,
)
from leaderboard.trust import task_trust

TONES = {"better": "green", "worse": "red", None: None}
POINTER = ("Every metric with its 95% interval and p-value, and the judge's failures, sanity check and "
           "agreement: leaderboard.md and leaderboard.html beside leaderboard.json.")


def _value(entry: dict, metric: str, compact: bool, notes: list[str]) -> Text:
    """Value, interval and test (compact: value and ▲/▼); an unreliable judge's quality ends in ⚠ unreliable
    (compact: ⚠ and the numbers of its reasons under the table)."""
    spec = entry["metrics"].get(metric)
    if spec is None:
        return Text("–")
    text = Text(value_text(spec, spec["value"]))
    if not compact and interval(spec):
        text.append(" " + interval(spec), style="dim")
    sign = arrow(spec) if compact else marker(spec)
    if sign:
        text.append(" " + sign, style=TONES[tone(spec)])
    if unreliable_metric(entry, metric):
        numbers = ",".join(reason_numbers(task_trust(entry), notes))
        text.append(" " + (UNRELIABLE_MARK + numbers if compact else UNRELIABLE), style="yellow")
    return text


class SlashWrapped:
    """A name that wraps after a `/` (or at a space) where it must: "self_lengthen/" over "iter_1/generator", never
    "self_lengthen/iter_1/g" over "enerator"; only a piece wider than the column is cut (folded)."""

    def __init__(self, text: Text) -> None:
        self.text = text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        pieces = re.findall(r"[^/\s]*/|[^/\s]+", self.text.plain) or [""]
        return Measurement(max(map(cell_len, pieces)), cell_len(self.text.plain))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        breaks, width, offset = [], 0, 0
        for piece in re.findall(r"[^/]*/|[^/]+", self.text.plain):
            if width and width + cell_len(piece) > options.max_width:
                breaks.append(offset)
                width = 0
            width += cell_len(piece)
            offset += len(piece)
        yield Text("\n").join(self.text.divide(breaks))


def _model(row: dict) -> SlashWrapped:
    if row.get("is_base"):
        return SlashWrapped(Text.assemble((row["model"], "bold"), " (base)"))
    return SlashWrapped(Text(row["model"]))


def _verdict(entry: dict, notes: list[str]) -> Text:
    trust = task_trust(entry)
    return Text(verdict_short(trust, notes), style="yellow" if trust and not trust["reliable"] else "")


def task_table(board: dict, task: str, compact: bool) -> Table:
    """The task's rows: every metric with interval and p-value, or (compact) a few values with ▲/▼ only."""
    metrics = compact_metrics(board, task) if compact else task_metrics(board, task)
    notes = reason_notes(board, task)
    verdicts = judged(board, task) and not compact  # compact: the quality cells carry the reason numbers
    rows = [row for row in board["rows"] if task in row["tasks"]]
    if compact:
        sizes = sorted({row["tasks"][task]["n"] for row in rows})
        prompts = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
        table = Table(title=Text(f"{task} · {prompts} prompts"), title_justify="left", box=box.SIMPLE_HEAD,
                      show_edge=False, pad_edge=False, collapse_padding=True)
        table.add_column("model", overflow="fold")
        for metric in metrics:
            table.add_column(Text(SHORT_LABELS.get(metric, label(metric))), justify="right", no_wrap=True)
    else:
        table = Table(title=Text(task), title_justify="left")
        for name in ("model", "arm", "iter", "n"):
            table.add_column(name, justify="left" if name in ("model", "arm") else "right")
        for metric in metrics:
            table.add_column(Text(label(metric)), justify="right")
        if verdicts:
            table.add_column(VERDICT)
    for row in rows:
        entry = row["tasks"][task]
        cells = [_value(entry, m, compact, notes) for m in metrics] + [_verdict(entry, notes)] * verdicts
        names = [] if compact else [Text(row.get("arm") or "–"), Text(iteration(row)), Text(str(entry["n"]))]
        table.add_row(_model(row), *names, *cells)
    return table


def demand_table(board: dict, task: str, compact: bool) -> Table | None:
    """The task's primary score and mean words per demand range (compact: the primary score only, ▲/▼ only)."""
    metrics = demand_metrics(board, task, with_words=not compact)
    if not metrics:
        return None
    table = Table(title=Text(f"{task} by demanded length · {range_sizes(board, task)}"), title_justify="left",
                  **({"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False} if compact else {}))
    table.add_column("model", overflow="fold")
    for metric in metrics:
        table.add_column(Text(label(metric)), justify="right", no_wrap=compact)
    for row in board["rows"]:
        if task in row["tasks"]:
            table.add_row(_model(row), *[_value(row["tasks"][task], m, compact, []) for m in metrics])
    return table


def pairwise_table(board: dict, task: str) -> Table | None:
    """The pairwise judge's win rates against the reference model (judge and model names: Text, never markup)."""
    pairs = pairwise_rows(board, task)
    if not pairs:
        return None
    table = Table(title=Text(f"{task} pairwise judge, {pairwise_references(board, task)}"), title_justify="left")
    table.add_column("model", overflow="fold")
    for name in PAIRWISE_COLUMNS:
        table.add_column(name, justify="right")
    for row, entry in pairs:
        table.add_row(_model(row), *pairwise_texts(entry))
    return table


def _fits(console: Console, table: Table) -> bool:
    """Whether the table's widest layout, every cell on one line, fits the console."""
    unbounded = console.options.update_width(1_000_000)
    return Measurement.get(console, unbounded, table).maximum <= console.width


def print_leaderboard(board: dict, console: Console | None = None) -> None:
    """Each task's table, its judge reasons, its scores by demand range and its pairwise win rates, then one
    legend: every table full where all of them fit the console, else every table compact."""
    console = console or Console()
    wide = [table for task in board["tasks"] for table in (task_table(board, task, compact=False),
                                                            demand_table(board, task, compact=False)) if table]
    compact = not all(_fits(console, table) for table in wide)
    for task in board["tasks"]:
        console.print(task_table(board, task, compact))
        notes = reason_notes(board, task)
        if notes:  # judgements.json text: Text cells, never markup
            reasons = Table.grid(padding=(0, 1), pad_edge=True)
            reasons.add_column(justify="right", no_wrap=True)
            reasons.add_column()
            for i, note in enumerate(notes, 1):
                reasons.add_row(f"({i})", Text(note))
            console.print(Text("judge unreliable because:", style="yellow"), reasons)
        for extra in (demand_table(board, task, compact), pairwise_table(board, task)):
            if extra is not None:
                console.print(extra)
        console.print()
    legend = [f"{LEGEND}; {TONE_LEGEND}"]
    if any(set(SHARES) & set(task_metrics(board, task)) for task in board["tasks"]):
        legend.append(DEGENERATION_LEGEND)
    if any(judged(board, task) for task in board["tasks"]):
        legend.append(TRUST_LEGEND)
    if any(demand_metrics(board, task) for task in board["tasks"]):
        legend.append(DEMAND_LEGEND)
    paragraphs = [COMPACT_LEGEND, POINTER] if compact else legend
    if any(pairwise_rows(board, task) for task in board["tasks"]):
        paragraphs.append(PAIRWISE_LEGEND)
    for paragraph in paragraphs:
        console.print(Text(paragraph + ("" if paragraph.endswith(".") else ".")), style="dim")
