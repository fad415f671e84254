"""How far to trust a task's judge scores: failures, sanity, agreement, and one verdict with its reasons.

The leaderboard renders this; the rule lives here so every view says the same. A judge is
unreliable for a task when its failures exceed 20% of the samples, or when the sanity check was
not run or any degradation is not scored below the original significantly above chance (one-sided
sign test, p < 0.05). Agreement between repeats is reported beside it, not part of the rule.
"""

from __future__ import annotations

import copy
from typing import Any

MAX_FAILURE_RATE = 0.2


def with_trust(
    judgements: dict[str, Any], sanity: dict[str, Any] | None = None, reliability: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A copy of the judgements.json dict with a `trust` entry in every task (judges/README.md)."""
    result = copy.deepcopy(judgements)
    sanity_tasks = (sanity or {}).get("tasks", {})
    reliability_tasks = (reliability or {}).get("tasks", {})
    for task, entry in result["tasks"].items():
        entry["trust"] = task_trust(entry, sanity_tasks.get(task), reliability_tasks.get(task))
    return result


def task_trust(entry: dict[str, Any], sanity: dict[str, Any] | None, reliability: dict[str, Any] | None) -> dict[str, Any]:
    """One task's trust entry from its judgements, its sanity report and its reliability report (either may be None)."""
    n, failures = entry["n"], entry["failures"]
    rate = failures / n if n else None
    reasons = []
    if rate is not None and rate > MAX_FAILURE_RATE:
        reasons.append(f"judge failed on {failures} of {n} samples ({rate:.0%}), above {MAX_FAILURE_RATE:.0%}")
    sanity_rates = None
    if sanity is None:
        reasons.append("sanity check not run")
    else:
        sanity_rates = {name: _sanity_rate(d) for name, d in sanity["degradations"].items()}
        for name, d in sanity["degradations"].items():
            if not d["above_chance"]:
                shown = "n/a" if d["rate"] is None else f"{d['rate']:.2f}"
                p = "n/a" if d["p_value"] is None else f"{d['p_value']:.3g}"
                reasons.append(f"sanity {name}: original preferred at rate {shown} over {d['n']} pairs (p={p}), not above chance")
    return {
        "failures": {"count": failures, "rate": rate},
        "sanity": sanity_rates,
        "agreement": None if reliability is None else _agreement(reliability),
        "reliable": not reasons,
        "unreliable_reasons": reasons,
    }


def _sanity_rate(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("rate", "ci", "p_value", "above_chance", "n")}


def _agreement(reliability: dict[str, Any]) -> dict[str, Any]:
    quality = reliability["quality"]
    return {
        "repeats_n": reliability["n"],
        "krippendorff_alpha": quality["krippendorff_alpha"],
        "spearman": quality["spearman"],
        "mean_std": quality["mean_std"],
    }
