"""The judging stages: each scored checkpoint's tasks judged (with the sanity check), their reliability repeats
and pairwise comparisons with the base, one stage per pass, checkpoint and task.

The passes that can share a judge server run together, by one call per server (`judge_servers`: all of them
but a transformers server's repeats): a 72B judge loads for minutes. Each report file holds every task, each
under its entry, so a stage's output is its entry and judging an added task keeps the others'.
"""

from __future__ import annotations

import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from harness.run.experiment_config import ExperimentConfig
from harness.run.scores import run_dir, task_stage
from harness.run.stages import JsonEntry, PlannedCheckpoint, Stage, code_version, file_digest, settings_of
from harness.scoring.judging import (JUDGE_PAIRWISE, JUDGE_RELIABILITY, JUDGE_SANITY, JudgeRunConfig,
                                     judge_against_reference, judge_endpoint, judge_reliability, judge_run,
                                     judge_servers, reliability_server, stop_judging_threads_on_error)
from harness.serving.serve import server_label
from judges.pairwise import PAIRWISE_RUBRIC_DIR
from judges.reliability import ReliabilityConfig
from judges.rubric import RUBRIC_DIR, rubric_for_task

JUDGE_CODE = ("judges",)
"""The modules a judging stage runs (the package's `__init__` imports all of it); the rubric it grades with is
added per task (`_judge_version`), so an edit to one rubric re-judges only the tasks it grades."""


def judge_stages(config: ExperimentConfig, scored: list[tuple[PlannedCheckpoint, list[Stage]]]) -> list[Stage]:
    """The judging stages of every scored checkpoint (with its scoring stages, one per task), pass by pass."""
    judge = config.judge
    tasks = [index for index, task in enumerate(config.tasks) if _judged_task(judge, task)]
    base = next((scores for checkpoint, scores in scored if checkpoint.arm == "base"), None)
    stages = [_judge(config, scores[i], checkpoint, base[i] if base else None)
              for checkpoint, scores in scored for i in tasks]
    if judge.repeat:
        stages += [_judge_repeat(config, scores[i], checkpoint) for checkpoint, scores in scored for i in tasks]
    if judge.pairwise and base is not None:
        stages += [_judge_pairwise(config, scores[i], base[i], checkpoint)
                   for checkpoint, scores in scored if checkpoint.arm != "base" for i in tasks]
    arms = {run_dir(config, checkpoint.name): checkpoint.arm for checkpoint, _ in scored}
    servers = judge_servers(judge, list(dict.fromkeys(stage.kind for stage in stages)))
    for number, (server, kinds) in enumerate(servers, 1):  # one for every pass that can share it
        run = functools.partial(_judge_on_one_server, config, server, kinds, arms)
        for stage in [stage for stage in stages if stage.kind in kinds]:
            stage.extra["judge_server"] = f"{number} of {len(servers)}: {', '.join(kinds)}"
            stage.run = run
    return stages


def _judged_task(judge: JudgeRunConfig, task: str) -> bool:
    """Whether the judge grades `task`: every task with a fixed rubric, else those with a packaged one
    (longwrite_ruler has none), so a task it skips has no judge stage that could never be done."""
    return judge.rubric != "auto" or rubric_for_task(task) is not None


def _judge_version(rubric: str, task: str | None) -> dict:
    """The code a judging pass runs and the rubric it reads: a packaged rubric (`auto`: the task's; `pairwise`)
    among the code's files, a rubric YAML of the user's by its content."""
    if rubric == "auto":
        rubric = rubric_for_task(task)
    folder = PAIRWISE_RUBRIC_DIR if task is None else RUBRIC_DIR
    if Path(rubric).suffix:
        return {"version": code_version(*JUDGE_CODE, files=()), "rubric_file": file_digest(rubric)}
    return {"version": code_version(*JUDGE_CODE, files=(folder / f"{rubric}.yaml",))}


def _judge_settings(judge: JudgeRunConfig) -> dict:
    """The judge section as it decides the replies: its server's kind and arguments too (they decide
    schema-constrained, logprob-weighted replies and the judge's precision) unless an endpoint is given."""
    return settings_of(dataclasses.asdict(judge), drop=("cache_path",) + (("server",) if judge.endpoint else ()))


def _judge(config: ExperimentConfig, score: Stage, checkpoint: PlannedCheckpoint, base: Stage | None) -> Stage:
    """One task of one checkpoint judged, with its sanity check; the report files hold every task, each its entry."""
    judge, task, folder = config.judge, score.extra["task"], score.output
    upstream = [score]
    if judge.sanity_scope == "base" and checkpoint.arm != "base" and base is not None:
        upstream.append(base)  # its sanity verdict comes from the base arm's answers to the task
    inputs = {"kind": "judge", "settings": _judge_settings(judge), **_judge_version(judge.rubric, task)}
    sampling = {"temperature": 0.0, "max_tokens": judge.max_tokens, "retry_temperature": judge.retry_temperature,
                "max_retries": judge.max_retries}
    entries = [JsonEntry(folder / "judgements.json", ("tasks", task))]
    if judge.sanity_subset:
        entries.append(JsonEntry(folder / JUDGE_SANITY, ("tasks", task)))
    return _judge_stage("judge", score, checkpoint, judge, _judge_backend(config), sampling, inputs, entries,
                        {"sanity_subset": judge.sanity_subset, "sanity_scope": judge.sanity_scope}, upstream)


def _judge_pairwise(config: ExperimentConfig, score: Stage, base: Stage, checkpoint: PlannedCheckpoint) -> Stage:
    judge = config.judge
    inputs = {"kind": "judge_pairwise", "settings": _judge_settings(judge), **_judge_version("pairwise", None)}
    sampling = {"temperature": 0.0, "max_tokens": judge.max_tokens}
    return _judge_stage("judge_pairwise", score, checkpoint, judge, _judge_backend(config), sampling, inputs,
                        [JsonEntry(score.output / JUDGE_PAIRWISE, ("tasks", score.extra["task"]))],
                        {"reference": "base"}, [score, base])


def _judge_repeat(config: ExperimentConfig, score: Stage, checkpoint: PlannedCheckpoint) -> Stage:
    judge = config.judge
    reliability = ReliabilityConfig(repeats=judge.repeat, subset_size=judge.repeat_subset)
    inputs = {"kind": "judge_repeat", "settings": _judge_settings(reliability_server(judge)),
              "repeat": judge.repeat, "repeat_subset": judge.repeat_subset,
              **_judge_version(judge.rubric, score.extra["task"])}
    sampling = {"temperature": reliability.temperature, "max_tokens": judge.max_tokens}
    backend = _judge_backend(config) + (" (no continuous batching)" if not judge.endpoint and
                                        judge.server.kind == "transformers" else "")
    return _judge_stage("judge_repeat", score, checkpoint, judge, backend, sampling, inputs,
                        [JsonEntry(score.output / JUDGE_RELIABILITY, ("tasks", score.extra["task"]))],
                        {"repeats": judge.repeat}, [score])


def _judge_stage(kind: str, score: Stage, checkpoint: PlannedCheckpoint, judge: JudgeRunConfig, backend: str,
                 sampling: dict, inputs: dict, entries: list[JsonEntry], extra: dict, upstream: list[Stage]) -> Stage:
    """A judging pass over one task of one checkpoint. Its output is its task's entry in the run's report
    (`entries`), not the file: a stale stage leaves the other tasks' entries, and its own is replaced when it runs."""
    task, folder = score.extra["task"], score.output
    return Stage(task_stage(kind, task, checkpoint.name), kind, judge.model, backend, judge.max_concurrency, sampling,
                 folder, folder / f"{kind}.{task}.stage.json", inputs, [], extra={"task": task, **extra},
                 entries=entries, upstream=upstream)


def _judge_backend(config: ExperimentConfig) -> str:
    return config.judge.endpoint or server_label(config.judge.server)


def _judge_on_one_server(config: ExperimentConfig, judge: JudgeRunConfig, kinds: list[str], arms: dict[Path, str],
                         stages: list[Stage], console: Console) -> None:
    """Run these judging stages (the passes `kinds` share one judge server) pass by pass: the judge first, the
    base arm's runs before the others when their sanity verdict is the base's; the other passes run by run."""
    base_dir = run_dir(config, "base") if "base" in arms.values() else None
    runs: dict[tuple[str, Path], list[str]] = {}  # (pass, run directory) -> its tasks to judge, in plan order
    for stage in stages:
        runs.setdefault((stage.kind, stage.output), []).append(stage.extra["task"])
    with judge_endpoint(judge, Path(config.out_dir) / f"{kinds[0]}_server.log") as endpoint:
        for kind in kinds:
            items = [(tasks, folder, arms[folder] == "base") for (pass_, folder), tasks in runs.items()
                     if pass_ == kind]
            if not items:
                continue
            console.rule(f"{kind.replace('_', ' ')}: {len(items)} run(s) with {escape(judge.model)}")
            if kind == "judge_repeat":
                for tasks, folder, _ in items:
                    judge_reliability(folder, endpoint, judge, console, tasks=tasks)
            elif kind == "judge_pairwise":
                for tasks, folder, _ in items:
                    judge_against_reference(folder, base_dir, endpoint, judge, console, tasks)
            else:
                sanity_from = base_dir if judge.sanity_scope == "base" else None
                first = [item for item in items if item[2] and sanity_from]  # the others copy its sanity verdict
                for group in (first, [item for item in items if item not in first]):
                    judge_together(group, endpoint, judge, console, sanity_from)


def judge_together(items: list[tuple[list[str], Path, bool]], endpoint, judge: JudgeRunConfig, console: Console,
                   sanity_from: Path | None) -> None:
    """Judge these runs at the same time, one thread each, so the judge server batches all their requests.

    Each item is a run's tasks to judge, its folder, and whether it is the base arm's (which judges its own
    sanity). A decode step of a few rows costs about as much as one of many on a CPU, so judging the runs one
    after another left the server mostly idle.
    """
    if not items:
        return

    def one(tasks: list[str], folder: Path, is_base: bool, progress: Progress) -> None:
        judge_run(folder, endpoint, judge, console, None if is_base else sanity_from, progress, tasks=tasks)

    with (Progress(console=console) as progress, ThreadPoolExecutor(max_workers=len(items)) as pool,
          stop_judging_threads_on_error()):  # exits first: the pool's exit then waits moments, not for all judging
        for future in [pool.submit(one, *item, progress) for item in items]:
            future.result()
