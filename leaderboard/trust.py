"""How far to trust a task's judge quality: failures, sanity check, agreement, and a verdict with its reasons.

The rule is recomputed here from the numbers in judgements.json, not taken from its ``reliable`` flag:
quality (and its length-controlled version) is unreliable when judge failures exceed 20% of the judged
samples, when the sanity check was not measured (no ``trust``, or its ``sanity`` null or empty), or when any
degradation (truncated, shuffled, swapped answers) is not scored below the original significantly above
chance (its own one-sided sign-test ``p_value`` < 0.05). A ``reliable: false`` in the file with none of
these causes is honoured with the file's own reasons. Agreement over repeats is shown, not part of the rule.
"""

from __future__ import annotations

from leaderboard.stats import ALPHA
from leaderboard.validate import is_number

MAX_FAILURE_RATE = 0.2
NOT_VALIDATED = "judge not validated (no sanity check)"
QUALITY_FIELDS = ("quality", "quality_lc")
SANITY_FIELDS = ("rate", "ci", "p_value", "n")
AGREEMENT_FIELDS = ("repeats_n", "krippendorff_alpha", "spearman", "mean_std")


def _shown(value, digits: str = ".2f") -> str:
    return format(value, digits) if is_number(value) else "n/a"


def _sanity(sanity: dict) -> tuple[dict, list[str]]:
    """Each degradation's numbers with ``above_chance`` recomputed from its p-value, and a reason per failing one."""
    measured, reasons = {}, []
    for name, numbers in sanity.items():
        kept = {key: numbers.get(key) for key in SANITY_FIELDS}
        kept["above_chance"] = is_number(kept["p_value"]) and kept["p_value"] < ALPHA
        measured[name] = kept
        if not kept["above_chance"]:
            reasons.append(f"sanity {name}: original preferred at rate {_shown(kept['rate'])} over "
                           f"{kept['n'] if kept['n'] is not None else 'n/a'} pairs "
                           f"(p={_shown(kept['p_value'], '.2g')}), not significantly above chance")
    return measured, reasons


def quality_trust(judged: dict, failures: int) -> dict:
    """leaderboard.json's ``quality_trust`` of one judged task: the numbers and the verdict with its reasons."""
    n = len(judged["samples"])
    rate = failures / n if n else None
    reasons = []
    if rate is not None and rate > MAX_FAILURE_RATE:
        reasons.append(f"judge failed on {failures} of {n} samples ({rate:.0%}), above {MAX_FAILURE_RATE:.0%}")
    trust = judged.get("trust") or {}
    sanity = None
    if trust.get("sanity"):
        sanity, failing = _sanity(trust["sanity"])
        reasons += failing
    else:
        reasons.append(NOT_VALIDATED)
    if trust.get("reliable") is False and not reasons:
        reasons = list(trust.get("unreliable_reasons") or ["judge marked unreliable in judgements.json"])
    agreement = trust.get("agreement")
    return {
        "reliable": not reasons, "reasons": reasons, "failures": failures, "n": n, "failures_rate": rate,
        "sanity": sanity,
        "agreement": None if agreement is None else {key: agreement.get(key) for key in AGREEMENT_FIELDS},
    }


def task_trust(entry: dict) -> dict | None:
    """A leaderboard task entry's ``quality_trust``; an older file's judged task without one was never validated."""
    trust = entry.get("quality_trust")
    if trust is None and any(spec["field"] in QUALITY_FIELDS for spec in entry.get("metrics", {}).values()):
        failures = entry.get("judge_failures")
        return {"reliable": False, "reasons": [NOT_VALIDATED], "failures": failures, "n": None,
                "failures_rate": None, "sanity": None, "agreement": None}
    return trust


def unreliable_reasons(entry: dict, metric: str) -> list[str]:
    """Why ``metric`` of this task entry is not to be trusted: the judge's reasons for a quality metric, else none."""
    spec = entry["metrics"].get(metric)
    trust = task_trust(entry)
    if spec is None or spec["field"] not in QUALITY_FIELDS or trust is None:
        return []
    return list(trust["reasons"])
