"""How much to trust a judge: re-judge a subset R times and measure agreement between the repeats.

Repeats are real calls (the repeat index is in the cache key) sampled at `temperature`, since
greedy repeats of a deterministic server would agree trivially. Agreement is reported three ways:
Krippendorff's alpha (interval metric) over the repeats, the mean pairwise Spearman rank
correlation between repeats, and each sample's score spread (population std across repeats).
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean, pstdev
from typing import Any


from judges.cache import JudgementCache
from judges.config import JudgeConfig
from judges.errors import JudgeError
from judges.judge import Judge, Judgement, request_mode
from judges.judgements import ProgressOption, TaskPlan, plan_tasks, progress_tracker, subset_plan
from infra.backend import TextBackend

Ratings = Sequence[Sequence[float | None]]
"""ratings[r][u]: repeat (rater) r's value for sample (unit) u; None or NaN where it failed."""


@dataclass
class ReliabilityConfig:
    """Which samples to re-judge and how.

    Fields:
        repeats: judgements per sample (R); at least 2.
        temperature: sampling temperature of the repeats.
        subset_size: samples per task to re-judge; None re-judges all.
        seed: picks the subset.
    """

    repeats: int = field(default=3, metadata={"help": "Judgements per sample (R), at least 2."})
    temperature: float = field(
        default=0.7, metadata={"help": "Temperature of the repeats; 0 measures only server nondeterminism."}
    )
    subset_size: int | None = field(default=20, metadata={"help": "Samples per task to re-judge; None re-judges all."})
    seed: int = field(default=0, metadata={"help": "Seed that picks the subset."})

    def __post_init__(self) -> None:
        if self.repeats < 2:
            raise JudgeError(f"ReliabilityConfig.repeats must be at least 2, got {self.repeats}")
        if self.subset_size is not None and self.subset_size < 1:
            raise JudgeError(f"ReliabilityConfig.subset_size must be at least 1 or None, got {self.subset_size}")
        if self.temperature < 0:
            raise JudgeError(f"ReliabilityConfig.temperature must be 0 or more, got {self.temperature}")


def krippendorff_alpha_interval(ratings: Ratings) -> float | None:
    """Krippendorff's alpha with the interval metric δ(a, b) = (a − b)²; None when undefined.

    alpha = 1 − D_o / D_e over the pairable values (units with at least two values), where
    D_o = (1/n) Σ_u Σ_{i≠j in u} δ / (m_u − 1) and D_e = Σ_{c≠k over all n values} δ / (n (n − 1)).
    With fewer than two pairable units D_o equals D_e by construction, so None is returned there too.
    """
    units = pairable_units(ratings)
    values = [v for u in units for v in u]
    n = len(values)
    if len(units) < 2:
        return None
    observed = sum(_ordered_pair_sum(u) / (len(u) - 1) for u in units) / n
    expected = _ordered_pair_sum(values) / (n * (n - 1))
    if expected == 0:
        return None
    return 1.0 - observed / expected


def pairable_units(ratings: Ratings) -> list[list[float]]:
    """Each sample's present values, for the samples judged successfully at least twice."""
    units = [[v for v in unit if _present(v)] for unit in zip(*ratings)]
    return [u for u in units if len(u) >= 2]


def mean_pairwise_spearman(ratings: Ratings) -> tuple[float | None, list[float | None]]:
    """Spearman's rho for every pair of repeats (on samples both scored) and their mean."""
    rhos = []
    for a, b in itertools.combinations(ratings, 2):
        pairs = [(x, y) for x, y in zip(a, b) if _present(x) and _present(y)]
        xs, ys = zip(*pairs) if pairs else ((), ())
        varied = len(pairs) >= 3 and len(set(xs)) > 1 and len(set(ys)) > 1
        from scipy.stats import spearmanr  # here: scipy takes half a second to import

        rhos.append(float(spearmanr(xs, ys).statistic) if varied else None)
    defined = [r for r in rhos if r is not None]
    return (fmean(defined) if defined else None), rhos


def score_spread(ratings: Ratings) -> list[float | None]:
    """Each sample's population standard deviation across repeats (None with fewer than two values)."""
    spreads = []
    for unit in zip(*ratings):
        values = [v for v in unit if _present(v)]
        spreads.append(pstdev(values) if len(values) >= 2 else None)
    return spreads


def agreement(ratings: Ratings) -> dict[str, Any]:
    """Alpha, Spearman and spread for one ratings matrix."""
    rho, pairs = mean_pairwise_spearman(ratings)
    spread = [s for s in score_spread(ratings) if s is not None]
    return {
        "samples_compared": len(pairable_units(ratings)),
        "krippendorff_alpha": krippendorff_alpha_interval(ratings),
        "spearman": rho,
        "spearman_pairs": pairs,
        "mean_std": fmean(spread) if spread else None,
        "max_std": max(spread) if spread else None,
    }


async def measure_reliability(
    scores: dict[str, Any],
    client: TextBackend,
    config: JudgeConfig,
    reliability: ReliabilityConfig,
    *,
    progress: ProgressOption = True,
) -> dict[str, Any]:
    """Re-judge a subset of each task `reliability.repeats` times; report agreement per task."""
    plans = [subset_plan(plan, reliability.subset_size, reliability.seed) for plan in plan_tasks(scores, config)]
    total = reliability.repeats * sum(len(p.samples) for p in plans)
    with JudgementCache(config.cache_path) as cache, progress_tracker(
        progress, total, f"re-judging x{reliability.repeats}"
    ) as advance:
        judge = Judge(client, config, cache, asyncio.Semaphore(config.max_concurrency), request_mode(client, config))

        async def one(plan: TaskPlan, sample: dict[str, Any], repeat: int) -> Judgement:
            judgement = await judge.judge(
                plan.rubric,
                sample.get("doc_id"),
                sample["prompt"],
                sample["response"],
                repeat=repeat,
                temperature=reliability.temperature,
            )
            advance()
            return judgement

        async def repeats(plan: TaskPlan) -> list[list[Judgement]]:
            rows = [[one(plan, s, r) for s in plan.samples] for r in range(reliability.repeats)]
            return [list(await asyncio.gather(*row)) for row in rows]

        results = await asyncio.gather(*(repeats(plan) for plan in plans))
    return {
        "judge": {"model": config.model, "rubric": config.rubric},
        "repeats": reliability.repeats,
        "temperature": reliability.temperature,
        "tasks": {plan.task: _task_report(plan, rows) for plan, rows in zip(plans, results)},
    }


def _task_report(plan: TaskPlan, rows: list[list[Judgement]]) -> dict[str, Any]:
    quality = [[j.quality for j in row] for row in rows]
    spreads = score_spread(quality)
    return {
        "rubric": plan.rubric.name,
        "n": len(plan.samples),
        "failures": sum(j.error is not None for row in rows for j in row),
        "quality": agreement(quality),
        "dimensions": {
            d: agreement([[None if j.scores is None else j.scores[d] for j in row] for row in rows])
            for d in plan.rubric.dimensions
        },
        "samples": [
            {"doc_id": s.get("doc_id"), "quality": [row[i].quality for row in rows], "std": spreads[i]}
            for i, s in enumerate(plan.samples)
        ],
    }


def _ordered_pair_sum(values: Sequence[float]) -> float:
    """Σ over ordered pairs i ≠ j of (v_i − v_j)², computed as 2 (m Σv² − (Σv)²)."""
    m = len(values)
    total = sum(values)
    return 2.0 * (m * sum(v * v for v in values) - total * total)


def _present(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))
