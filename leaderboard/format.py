"""What the views share: column order, labels and how a number with its interval and test is written."""

from __future__ import annotations

from leaderboard.demand import SEPARATOR
from leaderboard.trust import MAX_FAILURE_RATE, task_trust, unreliable_reasons

# The training facts a reader compares across arms, in this order, when train_stats has them.
# length_demands: the share of the training instructions that carry a length demand ("about N words");
# matched_budget: how the arms' training budgets were matched, a short text ("examples: 6, seeded subsample", "off").
TRAIN_STATS = {"samples": "training samples", "length_demands": "share with a length demand",
               "answer_words_mean": "mean answer words", "train_tokens": "training tokens", "steps": "steps",
               "final_loss": "final loss", "matched_budget": "matched budget"}
LABELS = {"words": "mean words", "length_ratio": "words / demanded", "quality": "quality (judge)",
          "quality_lc": "quality @ common length", "effective_words": "effective words",
          "repeated_10gram_share": "repeated 10-grams", "ended_at_cap": "ended at cap",
          "ends_sentence": "ends a sentence", **TRAIN_STATS}
# Header words of the terminal's compact table, which must fit 80 columns (COMPACT_LEGEND spells them out).
SHORT_LABELS = {"words": "words", "length_ratio": "ratio", "quality": "qual.", "quality_lc": "q@len",
                "repeated_10gram_share": "rep.", "ended_at_cap": "cap", "ends_sentence": "sent."}
# Metrics whose per-sample values are 0-1 shares or true/false: written as percentages.
SHARES = ("repeated_10gram_share", "ended_at_cap", "ends_sentence")
# The columns after the length scores, in this order: length, degeneration, then quality (last, so the judge
# verdict stands next to it).
TAIL = ("words", "effective_words", "repeated_10gram_share", "ended_at_cap", "ends_sentence", "quality", "quality_lc")
# What the terminal's compact table keeps besides each task's primary score.
COMPACT = ("words", "repeated_10gram_share", "ended_at_cap", "ends_sentence", "quality", "quality_lc")
LEGEND = ("value [95% CI]; ▲/▼ = significantly higher/lower than the base model "
          "(paired Wilcoxon over the same prompts, p < 0.05); lower is better for repeated 10-grams and ended at cap")
TONE_LEGEND = "▲/▼ in green where the difference is better, in red where it is worse"
DEGENERATION_LEGEND = ("repeated 10-grams = share of the answer's word 10-grams that repeat an earlier one "
                       "(1 - distinct/total; 0 below 10 words); effective words = words before the first repeated "
                       "10-gram; ended at cap = cut by the token limit (share of the answers whose finish reason "
                       "is known); ends a sentence = the answer ends with . ! ? or …")
COMPACT_LEGEND = ("▲/▼ = significantly higher/lower than the base model (paired Wilcoxon, p < 0.05; green better, "
                  "red worse); rep. = repeated 10-grams (share of the word 10-grams that repeat an earlier one), "
                  "cap = ended at the token cap, sent. = ends a sentence (shares of the answers), qual. = judge "
                  "quality, q@len = quality at the common length; ⚠1 = unreliable judge for reason (1) under the "
                  "table, not gated by the regression check")
UNRELIABLE = "⚠ unreliable"
UNRELIABLE_MARK = "⚠"  # the same marking where a cell has no room for the word (HTML; terminal: with its reasons)
TRUST_COLUMNS = ("judge failures", "judge sanity", "judge agreement")
VERDICT = "judge verdict"
TRUST_LEGEND = (f"{UNRELIABLE} = do not trust this judge quality: judge failures above {MAX_FAILURE_RATE:.0%} of "
                "the samples, or the sanity check (truncated, shuffled and swapped answers must score below the "
                "original; rate = share of pairs where the original wins, ties half; one-sided sign test "
                "p < 0.05) not measured or not significantly above chance; the judge verdict column points to "
                "the reasons under each table, and the regression check does not gate on it. judge agreement: "
                "Krippendorff's α and mean Spearman ρ between repeated judgements, and the mean spread (sd) of a "
                "sample's quality")


DEMAND_LEGEND = ("by demanded length: the primary score and mean words over the prompts whose demanded length "
                 "falls in each range the task declares ([low,high) words; the last range holds its high end too), "
                 "each with its 95% interval and its paired test against the base model over those prompts")
PAIRWISE_COLUMNS = ("win rate", "LC win rate", "judged", "position bias")
PAIRWISE_LEGEND = ("win rate = share of the prompts where the pairwise judge prefers the model's answer to the "
                   "reference model's (both orders, ties half) [95% bootstrap interval]; LC = length-controlled, "
                   "the win rate predicted at equal lengths (AlpacaEval 2); position bias = share of the prompts "
                   "whose verdict flipped with the order")


def label(metric: str) -> str:
    """A metric's header; a demand range's metric is its metric's label and the range ('S_l [0,500)')."""
    name, separator, where = metric.partition(SEPARATOR)
    return f"{LABELS.get(name, name)} {where}" if separator else LABELS.get(metric, metric)


def _task_specs(board: dict, task: str) -> dict[str, dict]:
    """Every metric of one task across rows, by name, in first-seen order (the first row's spec of each)."""
    specs: dict[str, dict] = {}
    for row in board["rows"]:
        for name, spec in row["tasks"].get(task, {}).get("metrics", {}).items():
            specs.setdefault(name, spec)
    return specs


def task_metrics(board: dict, task: str) -> list[str]:
    """The metric columns of one task across rows: the length scores first, then TAIL's order; the demand
    ranges' metrics are left to their own table (demand_metrics)."""
    names = [name for name, spec in _task_specs(board, task).items() if spec.get("demand") is None]
    tail = [m for m in TAIL if m in names]
    return [m for m in names if m not in tail] + tail


def demand_metrics(board: dict, task: str, with_words: bool = True) -> list[str]:
    """The columns of the task's by-demand table: per range, ascending, the primary score then (``with_words``)
    mean words."""
    specs = _task_specs(board, task)
    return sorted((name for name, spec in specs.items()
                   if spec.get("demand") is not None and (with_words or spec["field"] != "words")),
                  key=lambda name: (specs[name]["demand"]["low"], specs[name]["field"] != "score"))


def range_sizes(board: dict, task: str) -> str:
    """'[0,50) 7 · [50,200) 16 prompts': each range's prompts, from the first row that has the range's words."""
    specs = _task_specs(board, task)
    sizes = {name.partition(SEPARATOR)[2]: spec["n"] for name, spec in specs.items()
             if spec.get("demand") is not None and spec["field"] == "words"}
    return " · ".join(f"{where} {n}" for where, n in sizes.items()) + " prompts"


def pairwise_rows(board: dict, task: str) -> list[tuple[dict, dict]]:
    """(row, its pairwise entry) for the rows the pairwise judge compared on ``task``."""
    return [(row, row["tasks"][task]["pairwise"]) for row in board["rows"]
            if row["tasks"].get(task, {}).get("pairwise") is not None]


def pairwise_references(board: dict, task: str) -> str:
    """The reference model(s) and judge(s) of the task's pairwise comparisons, for the table's caption."""
    pairs = pairwise_rows(board, task)
    references = ", ".join(dict.fromkeys(str(entry.get("reference") or "–") for _, entry in pairs))
    judges = ", ".join(dict.fromkeys(str(entry.get("judge") or "–") for _, entry in pairs))
    return f"against {references}, judged by {judges}"


def rate_text(value: float | None, ci: list[float] | None = None) -> str:
    """A rate from 0 to 1 as a percentage, with its interval when there is one: '62% [51%, 73%]'."""
    if value is None:
        return "–"
    return f"{value:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "")


def pairwise_texts(entry: dict) -> list[str]:
    """The pairwise table's cells for one row: win rate, LC win rate, judged prompts, position bias."""
    judged_n = "–" if entry.get("n") is None else f"{entry['n'] - (entry.get('failures') or 0)} of {entry['n']}"
    return [rate_text(entry.get("win_rate"), entry.get("win_rate_ci")),
            rate_text(entry.get("lc_win_rate"), entry.get("lc_win_rate_ci")), judged_n,
            rate_text(entry.get("position_bias_rate"))]


def compact_metrics(board: dict, task: str) -> list[str]:
    """The terminal's narrow choice: the task's primary score (else its first metric), then COMPACT's columns."""
    names = task_metrics(board, task)
    primary = next((row["tasks"][task].get("primary") for row in board["rows"]
                    if row["tasks"].get(task, {}).get("primary") in names), None)
    first = primary or next((m for m in names if m not in TAIL), None)
    return ([first] if first else []) + [m for m in COMPACT if m in names]


def reason_notes(board: dict, task: str) -> list[str]:
    """Every distinct reason why a row's judge is unreliable on ``task``, in first-seen order: each view lists
    them once under the task's table and the verdict cells point to them by number. Judge text: escape it."""
    reasons = (reason for row in board["rows"] if task in row["tasks"]
               for reason in (task_trust(row["tasks"][task]) or {}).get("reasons", []))
    return list(dict.fromkeys(reasons))


def reason_numbers(trust: dict | None, notes: list[str]) -> list[str]:
    """The numbers of this judge's reasons in ``notes`` (none for a reliable or absent judge)."""
    return [str(notes.index(reason) + 1) for reason in (trust or {}).get("reasons", [])]


def verdict_short(trust: dict | None, notes: list[str]) -> str:
    """'reliable', or 'unreliable (1, 3)': the numbers of this judge's reasons in ``notes``."""
    if trust is None:
        return "–"
    return "reliable" if trust["reliable"] else "unreliable (" + ", ".join(reason_numbers(trust, notes)) + ")"


def judged(board: dict, task: str) -> bool:
    """Whether any row has judge results for the task (then the views show its judge verdict and details)."""
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


def train_stat_keys(board: dict) -> list[str]:
    """The train_stats columns: the well-known facts present in any row, else every key there is."""
    present = list(dict.fromkeys(k for row in board["rows"] for k in (row.get("train_stats") or {})))
    return [k for k in TRAIN_STATS if k in present] or present


def fact_text(value) -> str:
    """A training fact: a text as it is (untrusted: a view escapes it), a number by its size."""
    return value if isinstance(value, str) else number(value)


def number(value: float | None) -> str:
    """A number with as many digits as its size deserves."""
    if value is None:
        return "–"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def value_text(spec: dict, value: float | None) -> str:
    """One value of a metric: a share as a percentage ('97%'), any other number by its size."""
    if value is None:
        return "–"
    return f"{value:.0%}" if spec.get("field") in SHARES else number(value)


def change_text(spec: dict, diff: float) -> str:
    """A difference of means: '+12 pts' (percentage points) for a share, '+1.5' otherwise."""
    if spec.get("field") in SHARES:
        return f"{100 * diff:+.0f} pts"
    return ("+" if diff > 0 else "") + number(diff)


def interval(spec: dict) -> str:
    if not spec.get("ci"):
        return ""
    low, high = spec["ci"]
    return f"[{value_text(spec, low)}, {value_text(spec, high)}]"


def arrow(spec: dict) -> str:
    """▲ or ▼ when the row differs significantly from the base; empty otherwise."""
    test = spec.get("vs_base")
    if not test or not test["significant"]:
        return ""
    return "▲" if test["diff"] > 0 else "▼"


def marker(spec: dict) -> str:
    """▲ or ▼ with the p-value when the row differs significantly from the base; empty otherwise."""
    sign = arrow(spec)
    return f"{sign} p={spec['vs_base']['p']:.2g}" if sign else ""


def tone(spec: dict, against: str = "vs_base") -> str | None:
    """'better' or 'worse' for a significant difference from the base (or, with against="vs_previous", from the
    previous iteration), by the metric's direction (repeated 10-grams and ended at cap: lower is better); None
    when not significant or the metric has no direction."""
    test = spec.get(against)
    if not test or not test["significant"] or spec.get("higher_is_better") is None:
        return None
    return "better" if (test["diff"] > 0) == spec["higher_is_better"] else "worse"


def cell(spec: dict | None) -> str:
    """'62.5 [50.7, 73.5] ▲ p=0.0003' — a metric's value, its interval and its test against the base."""
    if spec is None:
        return "–"
    return " ".join(part for part in (value_text(spec, spec["value"]), interval(spec), marker(spec)) if part)


def iteration(row: dict) -> str:
    return "–" if row.get("iteration") is None else str(row["iteration"])


def iteration_number(row: dict) -> int | None:
    """The Self-Lengthen iteration as a whole number for the figures, None when the row has none (or not a number)."""
    value = row.get("iteration")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
