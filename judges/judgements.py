"""The entry point: judge every sample of a scores.json and return the judgements.json dict.

The caller (the harness) supplies the client and writes the file; see docs/run_directory.md.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from rich.progress import Progress

from judges.cache import JudgementCache
from judges.config import JudgeConfig
from judges.errors import JudgeError
from judges.judge import Judge, Judgement, request_mode
from judges.rubric import Rubric, load_rubric, rubric_for_task
from infra.backend import TextBackend

ProgressOption = Progress | bool
"""A rich Progress to add a bar to, True for a bar of our own, False for none."""


@dataclass(frozen=True)
class TaskPlan:
    """One task of scores.json and the rubric that grades it."""

    task: str
    rubric: Rubric
    samples: list[dict[str, Any]]


async def judge_scores(
    scores: dict[str, Any], client: TextBackend, config: JudgeConfig, *, progress: ProgressOption = True
) -> dict[str, Any]:
    """Judge every sample in a scores.json dict; return the judgements.json dict."""
    plans = plan_tasks(scores, config)
    mode = request_mode(client, config)
    with JudgementCache(config.cache_path) as cache, progress_tracker(
        progress, sum(len(p.samples) for p in plans), f"judging with {config.model}"
    ) as advance:
        judge = Judge(client, config, cache, asyncio.Semaphore(config.max_concurrency), mode)

        async def one(plan: TaskPlan, sample: dict[str, Any]) -> Judgement:
            judgement = await judge.judge(plan.rubric, sample.get("doc_id"), sample["prompt"], sample["response"])
            advance()
            return judgement

        results = await asyncio.gather(*(asyncio.gather(*(one(plan, s) for s in plan.samples)) for plan in plans))
    return {
        "judge": {"model": config.model, "rubric": config.rubric, "structured": mode.structured,
                  "top_logprobs": mode.top_logprobs, "schema_refused": judge.schema_refused},
        "tasks": {plan.task: summarize(plan.rubric, judgements) for plan, judgements in zip(plans, results)},
    }


def summarize(rubric: Rubric, judgements: list[Judgement]) -> dict[str, Any]:
    """A task entry of judgements.json: S_q (0–100), the mean on the rubric's scale, failures counted.

    S_q maps each dimension's mean m to 0–100 and averages the dimensions (for LongBench-Write
    (m − 1)·25, the published S_q); failed samples are excluded and counted, never scored.
    `without_logprobs` counts the samples scored from their parsed reply because the endpoint
    returned none of the logprobs asked for.
    """
    scored = [j.scores for j in judgements if j.scores is not None]
    dimensions = {d: fmean(s[d] for s in scored) for d in rubric.dimensions} if scored else None
    return {
        "rubric": rubric.name,
        "rubric_version": rubric.version,
        "S_q": fmean(rubric.to_percent(m) for m in dimensions.values()) if dimensions else None,
        "mean_score": fmean(dimensions.values()) if dimensions else None,
        "scale": [rubric.scale_min, rubric.scale_max],
        "dimensions": dimensions,
        "n": len(judgements),
        "failures": sum(j.error is not None for j in judgements),
        "missing_dimensions": sum(len(j.missing) for j in judgements),
        "weighted_samples": sum(bool(j.weighted_dimensions) for j in judgements),
        "without_logprobs": sum(j.without_logprobs for j in judgements),
        "samples": [j.to_record() for j in judgements],
    }


def plan_tasks(scores: dict[str, Any], config: JudgeConfig) -> list[TaskPlan]:
    """Pair each task of scores.json with its rubric, checking that the samples can be judged."""
    tasks = scores.get("tasks") if isinstance(scores, dict) else None
    if not isinstance(tasks, dict):
        raise JudgeError("scores must be a scores.json dict with a 'tasks' mapping (docs/run_directory.md)")
    fixed = None if config.rubric == "auto" else load_rubric(config.rubric)
    plans = []
    for task, entry in tasks.items():
        name = None if fixed else rubric_for_task(task)
        if fixed is None and name is None:
            continue
        samples = entry.get("samples") if isinstance(entry, dict) else None
        if not isinstance(samples, list):
            raise JudgeError(f"task {task!r} in scores has no 'samples' list")
        for i, sample in enumerate(samples):
            if not isinstance(sample, dict) or not all(isinstance(sample.get(k), str) for k in ("prompt", "response")):
                raise JudgeError(f"task {task!r} sample {i} needs string 'prompt' and 'response' fields")
        plans.append(TaskPlan(task, fixed or load_rubric(name), samples))
    return plans


def subset_plan(plan: TaskPlan, size: int | None, seed: int) -> TaskPlan:
    """The plan restricted to `size` samples picked by `seed` (in their original order); all when None."""
    if size is None or size >= len(plan.samples):
        return plan
    picked = sorted(random.Random(seed).sample(range(len(plan.samples)), size))
    return TaskPlan(plan.task, plan.rubric, [plan.samples[i] for i in picked])


@contextmanager
def progress_tracker(progress: ProgressOption, total: int, description: str) -> Iterator[Callable[[], None]]:
    """Yield a function that advances a progress bar by one: the caller's, our own, or none."""
    if progress is False:
        yield lambda: None
    elif progress is True:
        with Progress() as own:
            task_id = own.add_task(description, total=total)
            yield lambda: own.advance(task_id)
    else:
        task_id = progress.add_task(description, total=total)
        yield lambda: progress.advance(task_id)
