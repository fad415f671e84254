"""Does the judge notice a worse answer? Degrade real answers and check it scores the originals higher.

Three degradations of each judged answer, graded with the same rubric and prompt:
- `truncated`: the answer cut after its first third of words (whitespace-separated, at least one);
  a text of fewer than three words (unspaced Chinese) is cut to its first third of characters.
- `shuffled`: its paragraphs (blank-line separated) in another order; with a single paragraph, its
  sentences (ending in . ! ? 。 ！ ？) in another order. Drawn from `infra.rng.item_rng(seed,
  "task:doc_id:shuffled")`, redrawn until the order differs; an answer of one sentence is skipped.
- `swapped`: another prompt's answer of the same task, by a derangement of the samples (Sattolo's
  algorithm, one cycle: nobody keeps their own), from `item_rng(seed, "task:swapped")`.

Per task and degradation: the rate at which the original's quality is strictly higher (a tie counts
half, a lower original zero) over the pairs where both were judged, its 95% Wilson interval, and a
one-sided sign test (ties dropped) of "the original wins more often than chance"; p < 0.05 passes.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field
from typing import Any

from judges.cache import JudgementCache
from judges.config import JudgeConfig
from judges.errors import JudgeError
from judges.judge import Judge, Judgement, request_mode
from judges.judgements import ProgressOption, TaskPlan, plan_tasks, progress_tracker, subset_plan
from judges.stats import sign_test_p, wilson_interval
from infra.backend import TextBackend
from infra.rng import item_rng

DEGRADATIONS = ("truncated", "shuffled", "swapped")
SIGNIFICANCE = 0.05

_SENTENCE = re.compile(r"[^.!?。！？]+[.!?。！？]*")


@dataclass
class SanityConfig:
    """Which answers to degrade.

    Fields:
        subset_size: samples per task to degrade; None uses all.
        seed: picks the subset and drives the shuffles and the derangement.
    """

    subset_size: int | None = field(default=20, metadata={"help": "Samples per task to degrade; None uses all."})
    seed: int = field(default=0, metadata={"help": "Seed of the subset, the shuffles and the derangement."})

    def __post_init__(self) -> None:
        if self.subset_size is not None and self.subset_size < 2:
            raise JudgeError(f"SanityConfig.subset_size must be at least 2 or None, got {self.subset_size}")


def truncated(response: str) -> str | None:
    """The first third of the answer's words (or characters, under three words); None when nothing is left."""
    words = list(re.finditer(r"\S+", response))
    if len(words) >= 3:
        return response[: words[len(words) // 3 - 1].end()]
    text = response.strip()
    return text[: len(text) // 3] if len(text) >= 3 else None


def shuffled(response: str, rng: random.Random) -> str | None:
    """The paragraphs (or, for one paragraph, the sentences) in another order; None with a single unit."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", response) if p.strip()]
    if len(paragraphs) >= 2:
        units, joiner = paragraphs, "\n\n"
    else:
        units = [s.strip() for s in _SENTENCE.findall(response) if s.strip()]
        joiner = " " if re.search(r"\s", response.strip()) else ""
    if len(set(units)) < 2:
        return None
    order = list(units)
    while order == units:
        rng.shuffle(order)
    return joiner.join(order)


def derangement(n: int, rng: random.Random) -> list[int]:
    """A permutation with no fixed point (Sattolo's single cycle): position i takes item result[i]."""
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)
        order[i], order[j] = order[j], order[i]
    return order


def degraded_answers(plan: TaskPlan, seed: int) -> dict[str, list[str | None]]:
    """Each degradation's answer for every sample of the task (None where it cannot be built)."""
    responses = [s["response"] for s in plan.samples]
    swap = derangement(len(responses), item_rng(seed, f"{plan.task}:swapped")) if len(responses) >= 2 else None
    return {
        "truncated": [truncated(r) for r in responses],
        "shuffled": [
            shuffled(r, item_rng(seed, f"{plan.task}:{s.get('doc_id')}:shuffled")) for r, s in zip(responses, plan.samples)
        ],
        "swapped": [None if swap is None else responses[swap[i]] for i in range(len(responses))],
    }


async def check_sanity(
    scores: dict[str, Any], client: TextBackend, config: JudgeConfig, sanity: SanityConfig, *, progress: ProgressOption = True
) -> dict[str, Any]:
    """Judge originals and their degradations; per task and degradation, how often the original wins."""
    plans = [subset_plan(plan, sanity.subset_size, sanity.seed) for plan in plan_tasks(scores, config)]
    degraded = {plan.task: degraded_answers(plan, sanity.seed) for plan in plans}
    total = sum(len(p.samples) + sum(a is not None for answers in degraded[p.task].values() for a in answers) for p in plans)
    mode = request_mode(client, config)
    with JudgementCache(config.cache_path) as cache, progress_tracker(progress, total, "judge sanity check") as advance:
        judge = Judge(client, config, cache, asyncio.Semaphore(config.max_concurrency), mode)

        async def one(plan: TaskPlan, sample: dict[str, Any], response: str | None) -> Judgement | None:
            if response is None:
                return None
            judgement = await judge.judge(plan.rubric, sample.get("doc_id"), sample["prompt"], response)
            advance()
            return judgement

        async def task(plan: TaskPlan) -> dict[str, Any]:
            originals = asyncio.gather(*(one(plan, s, s["response"]) for s in plan.samples))
            versions = {
                name: asyncio.gather(*(one(plan, s, a) for s, a in zip(plan.samples, answers)))
                for name, answers in degraded[plan.task].items()
            }
            judged = await asyncio.gather(originals, *versions.values())
            return sanity_report(plan, judged[0], dict(zip(versions, judged[1:])))

        reports = await asyncio.gather(*(task(plan) for plan in plans))
    return {"judge": {"model": config.model, "rubric": config.rubric}, "seed": sanity.seed, "tasks": dict(zip((p.task for p in plans), reports))}


def sanity_report(
    plan: TaskPlan, originals: list[Judgement], versions: dict[str, list[Judgement | None]]
) -> dict[str, Any]:
    """A task's sanity entry: per degradation the original's win rate, interval, sign test and samples."""
    return {
        "rubric": plan.rubric.name,
        "n": len(plan.samples),
        "degradations": {name: compare(originals, judged) for name, judged in versions.items()},
    }


def compare(originals: list[Judgement], degraded: list[Judgement | None]) -> dict[str, Any]:
    """Wins (original strictly higher), ties (half) and losses over the pairs judged on both sides."""
    outcomes, samples = [], []
    for original, other in zip(originals, degraded):
        if other is None:
            continue
        samples.append({"doc_id": original.doc_id, "original": original.quality, "degraded": other.quality})
        if original.quality is not None and other.quality is not None:
            outcomes.append((original.quality > other.quality) - (original.quality < other.quality))
    wins, ties, losses = outcomes.count(1), outcomes.count(0), outcomes.count(-1)
    n = len(outcomes)
    p_value = sign_test_p(wins, losses)
    return {
        "n": n,
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "rate": (wins + ties / 2) / n if n else None,
        "ci": wilson_interval(wins + ties / 2, n),
        "p_value": p_value,
        "above_chance": p_value is not None and p_value < SIGNIFICANCE,
        "not_built": sum(d is None for d in degraded),
        "failures": sum(1 for s in samples if s["original"] is None or s["degraded"] is None),
        "samples": samples,
    }
