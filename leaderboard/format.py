"""What the views share: column order, labels and how a number with its interval and test is written."""

from __future__ import annotations

from leaderboard.trust import MAX_FAILURE_RATE, unreliable_reasons

# The training facts a reader compares across arms, in this order, when train_stats has them.
TRAIN_STATS = {"samples": "training samples", "answer_words_mean": "mean answer words",
               "train_tokens": "training tokens", "steps": "steps", "final_loss": "final loss"}
LABELS = {"words": "mean words", "length_ratio": "words / demanded", "quality": "quality (judge)",
          "quality_lc": "quality @ common length", **TRAIN_STATS}
LEGEND = ("value [95% CI]; ▲/▼ = significantly higher/lower than the base model "
          "(paired Wilcoxon over the same prompts, p < 0.05)")
UNRELIABLE = "⚠ unreliable"
TRUST_COLUMNS = ("judge failures", "judge sanity", "judge agreement", "judge verdict")
TRUST_LEGEND = (f"{UNRELIABLE} = do not trust this judge quality: judge failures above {MAX_FAILURE_RATE:.0%} of "
                "the samples, or the sanity check (truncated, shuffled and swapped answers must score below the "
                "original; rate = share of pairs where the original wins, ties half; one-sided sign test "
                "p < 0.05) not measured or not significantly above chance; the judge verdict column gives the "
                "reason, and the regression check does not gate on it. judge agreement: Krippendorff's α and "
                "mean Spearman ρ between repeated judgements, and the mean spread (sd) of a sample's quality")


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def task_metrics(board: dict, task: str) -> list[str]:
    """The metric columns of one task across rows: the length scores first, then length, then quality (last, so
    the judge-trust columns stand next to it)."""
    names = list(dict.fromkeys(m for row in board["rows"] for m in row["tasks"].get(task, {}).get("metrics", {})))
    tail = [m for m in ("words", "quality", "quality_lc") if m in names]
    return [m for m in names if m not in tail] + tail


def judged(board: dict, task: str) -> bool:
    """Whether any row has judge results for the task (then the views show a judge-failures column)."""
    return any(row["tasks"].get(task, {}).get("judge_failures") is not None for row in board["rows"])


def unreliable_metric(entry: dict, metric: str) -> bool:
    """Whether this cell is a judge quality whose judge failed the trust rule (leaderboard/trust.py)."""
    return bool(unreliable_reasons(entry, metric))


def failures_text(trust: dict | None) -> str:
    """'1 of 15 (7%)': the judgements that failed, of all judged samples."""
    if trust is None or trust.get("failures") is None:
        return "–"
    if trust.get("n") is None or trust.get("failures_rate") is None:
        return number(trust["failures"])
    return f"{trust['failures']} of {trust['n']} ({trust['failures_rate']:.0%})"


def sanity_parts(trust: dict | None) -> list[tuple[str, bool]]:
    """('truncated 0.94 (p=0.0002)', passed) per degradation; [] when the sanity check was not measured.
    The degradation name comes from judgements.json: a view escapes it."""
    if trust is None or not trust.get("sanity"):
        return []
    return [(f"{name} {number(s.get('rate'))} (p={'–' if s.get('p_value') is None else format(s['p_value'], '.2g')})",
             bool(s.get("above_chance"))) for name, s in trust["sanity"].items()]


def sanity_text(trust: dict | None) -> str:
    parts = sanity_parts(trust)
    if not parts:
        return "–" if trust is None else "not measured"
    return ", ".join(part + ("" if passed else " ✗") for part, passed in parts)


def agreement_text(trust: dict | None) -> str:
    """'α 0.81, ρ 0.77, sd 4.10 (n=8)' over repeated judgements; 'not measured' without repeats."""
    if trust is None:
        return "–"
    agreement = trust.get("agreement")
    if agreement is None:
        return "not measured"
    size = "" if agreement.get("repeats_n") is None else f" (n={agreement['repeats_n']})"
    return (f"α {number(agreement.get('krippendorff_alpha'))}, ρ {number(agreement.get('spearman'))}, "
            f"sd {number(agreement.get('mean_std'))}{size}")


def verdict_text(trust: dict | None) -> str:
    """'reliable', or 'unreliable: reason; reason' (reasons may hold names from judgements.json: escape them)."""
    if trust is None:
        return "–"
    return "reliable" if trust["reliable"] else "unreliable: " + "; ".join(trust["reasons"])


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
