"""leaderboard.md: one table per task, a training table and the method, read from leaderboard.json only."""

from __future__ import annotations

from leaderboard.format import LEGEND, cell, iteration, judged, label, number, task_metrics, train_stat_keys


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    escape = lambda text: str(text).replace("|", "\\|")  # noqa: E731 - one-line cell escaper
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(escape, row)) + " |" for row in rows]


def _model(row: dict) -> str:
    return f"**{row['model']}** (base)" if row.get("is_base") else row["model"]


def render_markdown(board: dict) -> str:
    """The whole leaderboard as Markdown."""
    lines = ["# Leaderboard", "", LEGEND + ".", ""]
    for task in board["tasks"]:
        metrics = task_metrics(board, task)
        has_judge = judged(board, task)
        header = ["model", "arm", "iter", "n"] + [label(m) for m in metrics] + (["judge failures"] if has_judge else [])
        body = []
        for row in board["rows"]:
            entry = row["tasks"].get(task)
            if entry is None:
                continue
            failures = [number(entry["judge_failures"])] if has_judge else []
            body.append([_model(row), row.get("arm") or "–", iteration(row), str(entry["n"])]
                        + [cell(entry["metrics"].get(m)) for m in metrics] + failures)
        lines += [f"## {task}", ""] + _table(header, body) + [""]
    keys = train_stat_keys(board)
    if keys:
        body = [[row["model"], row.get("arm") or "–", iteration(row)]
                + [number((row.get("train_stats") or {}).get(k)) for k in keys]
                for row in board["rows"] if row.get("train_stats")]
        header = ["model", "arm", "iter"] + [label(k) for k in keys]
        lines += ["## Training data per arm", ""] + _table(header, body) + [""]
    lines += ["## Method", ""] + [f"- **{name}**: {text}" for name, text in board.get("method", {}).items()]
    for task, fit in board.get("length_control", {}).items():
        lines.append(f"- length control on {task}: slope {fit['slope']:.2f} quality points per unit of "
                     f"log(words+1), common length {fit['common_words']:.0f} words")
    return "\n".join(lines) + "\n"
