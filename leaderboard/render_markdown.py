"""leaderboard.md: one table per task (then its scores by demand range and its pairwise win rates), a training
table and the method, read from leaderboard.json only.

Names and method text come from users and models: every such string goes through ``md_text``, so HTML in a
model name stays text and Markdown in it stays literal wherever the file is rendered (GitHub, a docs site).
"""

from __future__ import annotations

import re

from leaderboard.format import (
    DEGENERATION_LEGEND,
    DEMAND_LEGEND,
    LEGEND,
    PAIRWISE_COLUMNS,
    PAIRWISE_LEGEND,
    SHARES,
    TRUST_COLUMNS,
    TRUST_LEGEND,
    UNRELIABLE,
    VERDICT,
    agreement_text,
    cell,
    change_text,
    demand_metrics,
    fact_text,
    failures_text,
    iteration,
    judged,
    label,
    pairwise_references,
    pairwise_rows,
    pairwise_texts,
    range_sizes,
    reason_notes,
    sanity_text,
    task_metrics,
    tone,
    train_stat_keys,
    unreliable_metric,
    verdict_short,
)
from leaderboard.trust import task_trust

# Characters that start Markdown inline syntax anywhere in a line (code, emphasis, links, tables, strike-through),
# and an underscore at a word's edge (inside a word, as in self_lengthen, it is plain text).
_MARKDOWN_SPECIALS = re.compile(r"([\\`*\[\]|~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def md_text(text) -> str:
    """``text`` as literal Markdown: &, < and > as HTML entities, inline Markdown punctuation backslash-escaped,
    line breaks as spaces (a table cell is one line). Line-start syntax (#, -, 1.) never applies: every use
    is after a table bar, a heading's ## or a list's -."""
    text = " ".join(str(text).splitlines())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIALS.sub(lambda match: "\\" + match.group(0), text)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Cells are Markdown already (user text through md_text); ``|`` in our own numbers never occurs."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _model(row: dict) -> str:
    return f"**{md_text(row['model'])}** (base)" if row.get("is_base") else md_text(row["model"])


def _metric_cell(entry: dict, metric: str) -> str:
    marked = f" {UNRELIABLE}" if unreliable_metric(entry, metric) else ""
    return cell(entry["metrics"].get(metric)) + marked


def _judge_section(board: dict, task: str) -> list[str]:
    """Under a judged task's table: its reasons, numbered once (the verdict cells point to them), and a table of
    each row's judge failures, sanity rates and agreement (judgements.json text: escaped)."""
    notes = reason_notes(board, task)
    lines = ["Judge unreliable because:", ""] + [f"{i}. {md_text(note)}" for i, note in enumerate(notes, 1)] + [""]
    body = [[_model(row)] + [md_text(text(task_trust(row["tasks"][task])))
                             for text in (failures_text, sanity_text, agreement_text)]
            for row in board["rows"] if task in row["tasks"]]
    return (lines if notes else []) + ["Judge of the quality columns:", ""] + _table(["model", *TRUST_COLUMNS], body)


def _demand_section(board: dict, task: str) -> list[str]:
    """The task's primary score and mean words per demand range, each with its interval and test vs. the base."""
    metrics = demand_metrics(board, task)
    if not metrics:
        return []
    body = [[_model(row)] + [_metric_cell(row["tasks"][task], m) for m in metrics]
            for row in board["rows"] if task in row["tasks"]]
    caption = f"By demanded length ({md_text(range_sizes(board, task))}):"
    return [caption, ""] + _table(["model"] + [md_text(label(m)) for m in metrics], body) + [""]


def _pairwise_section(board: dict, task: str) -> list[str]:
    """The pairwise judge's win rates of the rows it compared with the reference model on the task."""
    pairs = pairwise_rows(board, task)
    if not pairs:
        return []
    body = [[_model(row)] + pairwise_texts(entry) for row, entry in pairs]  # our own numbers: no escaping
    caption = f"Pairwise judge, {md_text(pairwise_references(board, task))}:"
    return [caption, ""] + _table(["model", *PAIRWISE_COLUMNS], body) + [""]


def _iteration_steps(board: dict) -> list[str]:
    """Each iteration against the one before it (same arm, same prompts): the change and its Wilcoxon p; the
    demand ranges' metrics stay in the JSON (their prompts are few)."""
    body = []
    for row in board["rows"]:
        for task, entry in row["tasks"].items():
            for name in task_metrics(board, task):
                spec = entry["metrics"].get(name)
                test = spec and spec.get("vs_previous")
                if test is None:
                    continue
                arrow = ("▲ " if test["diff"] > 0 else "▼ ") if test["significant"] else ""
                verdict = tone(spec, "vs_previous")
                change = arrow + change_text(spec, test["diff"]) + (f" ({verdict})" if verdict else "")
                body.append([md_text(task), md_text(test["model"]), _model(row), md_text(label(name)), change,
                             f"{test['p']:.2g}", str(test["n_pairs"])])
    if not body:
        return []
    header = ["task", "from", "to", "metric", "change", "p", "prompts"]
    legend = ("Paired Wilcoxon over the prompts both iterations answered; ▲/▼ = significant at p < 0.05, better or "
              "worse by the metric's direction (lower is better for repeated 10-grams and ended at cap).")
    return ["## Iteration over iteration", "", legend, ""] + _table(header, body) + [""]


def render_markdown(board: dict) -> str:
    """The whole leaderboard as Markdown."""
    any_judged = any(judged(board, task) for task in board["tasks"])
    any_shares = any(set(SHARES) & set(task_metrics(board, task)) for task in board["tasks"])
    lines = ["# Leaderboard", "", LEGEND + ".", ""] + ([DEGENERATION_LEGEND + ".", ""] if any_shares else [])
    lines += [md_text(TRUST_LEGEND) + ".", ""] if any_judged else []
    lines += [DEMAND_LEGEND + ".", ""] if any(demand_metrics(board, task) for task in board["tasks"]) else []
    lines += [PAIRWISE_LEGEND + ".", ""] if any(pairwise_rows(board, task) for task in board["tasks"]) else []
    for task in board["tasks"]:
        metrics = task_metrics(board, task)
        has_judge = judged(board, task)
        notes = reason_notes(board, task)
        header = ["model", "arm", "iter", "n"] + [md_text(label(m)) for m in metrics] + [VERDICT] * has_judge
        body = []
        for row in board["rows"]:
            entry = row["tasks"].get(task)
            if entry is None:
                continue
            body.append([_model(row), md_text(row.get("arm") or "–"), md_text(iteration(row)), str(entry["n"])]
                        + [_metric_cell(entry, m) for m in metrics]
                        + [verdict_short(task_trust(entry), notes)] * has_judge)
        lines += [f"## {md_text(task)}", ""] + _table(header, body) + [""]
        lines += _judge_section(board, task) + [""] if has_judge else []
        lines += _demand_section(board, task) + _pairwise_section(board, task)
    lines += _iteration_steps(board)
    keys = train_stat_keys(board)
    if keys:
        body = [[md_text(row["model"]), md_text(row.get("arm") or "–"), md_text(iteration(row))]
                + [md_text(fact_text((row.get("train_stats") or {}).get(k))) for k in keys]
                for row in board["rows"] if row.get("train_stats")]
        header = ["model", "arm", "iter"] + [md_text(label(k)) for k in keys]
        lines += ["## Training data per arm", ""] + _table(header, body) + [""]
    lines += ["## Method", ""] + [f"- **{md_text(name)}**: {md_text(text)}"
                                  for name, text in board.get("method", {}).items()]
    for task, fit in board.get("length_control", {}).items():
        lines.append(f"- length control on {md_text(task)}: slope {fit['slope']:.2f} quality points per unit of "
                     f"log(words+1), common length {fit['common_words']:.0f} words")
    return "\n".join(lines) + "\n"
