"""What the views share: column order, labels and how a number with its interval and test is written."""

from __future__ import annotations

# The training facts a reader compares across arms, in this order, when train_stats has them.
TRAIN_STATS = {"samples": "training samples", "answer_words_mean": "mean answer words",
               "train_tokens": "training tokens", "steps": "steps", "final_loss": "final loss"}
LABELS = {"words": "mean words", "length_ratio": "words / demanded", "quality": "quality (judge)",
          "quality_lc": "quality @ common length", **TRAIN_STATS}
LEGEND = ("value [95% CI]; ▲/▼ = significantly higher/lower than the base model "
          "(paired Wilcoxon over the same prompts, p < 0.05)")


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def task_metrics(board: dict, task: str) -> list[str]:
    """The metric columns of one task across rows: the length scores first, then quality, then length."""
    names = list(dict.fromkeys(m for row in board["rows"] for m in row["tasks"].get(task, {}).get("metrics", {})))
    tail = [m for m in ("quality", "quality_lc", "words") if m in names]
    return [m for m in names if m not in tail] + tail


def judged(board: dict, task: str) -> bool:
    """Whether any row has judge results for the task (then the views show a judge-failures column)."""
    return any(row["tasks"].get(task, {}).get("judge_failures") is not None for row in board["rows"])


def train_stat_keys(board: dict) -> list[str]:
    """The train_stats columns: the well-known facts present in any row, else every key there is."""
    present = list(dict.fromkeys(k for row in board["rows"] for k in (row.get("train_stats") or {})))
    return [k for k in TRAIN_STATS if k in present] or present


def number(value: float | None) -> str:
    """A number with as many digits as its size deserves."""
    if value is None:
        return "–"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def interval(spec: dict) -> str:
    if not spec.get("ci"):
        return ""
    low, high = spec["ci"]
    return f"[{number(low)}, {number(high)}]"


def marker(spec: dict) -> str:
    """▲ or ▼ with the p-value when the row differs significantly from the base; empty otherwise."""
    test = spec.get("vs_base")
    if not test or not test["significant"]:
        return ""
    return f"{'▲' if test['diff'] > 0 else '▼'} p={test['p']:.2g}"


def cell(spec: dict | None) -> str:
    """'62.5 [50.7, 73.5] ▲ p=0.0003' — a metric's value, its interval and its test against the base."""
    if spec is None:
        return "–"
    return " ".join(part for part in (number(spec["value"]), interval(spec), marker(spec)) if part)


def iteration(row: dict) -> str:
    return "–" if row.get("iteration") is None else str(row["iteration"])


def iteration_number(row: dict) -> int | None:
    """The Self-Lengthen iteration as a whole number for the figures, None when the row has none (or not a number)."""
    value = row.get("iteration")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
