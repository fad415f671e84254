"""The scoring stages: one per checkpoint and task, a checkpoint's tasks scored by one lm-eval call.

Adding a task scores only it, and an edit to one task's YAML or rows re-scores only that task; each
checkpoint's scores go to its run directory, `runs/<checkpoint>/` (docs/run_directory.md).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.run.experiment_config import ExperimentConfig, eval_config
from harness.run.stages import JsonEntry, PlannedCheckpoint, Stage, code_version, file_digest, settings_of
from harness.scoring.evaluate import eval_decoding, run_eval
from harness.serving.models import resolve_model
from harness.serving.serve import server_label
from infra.journal import json_object
from infra.journal import write_json_atomically as write_json
from tasks.data import benchmark_source
from tasks.decoding import task_max_gen_toks
from tasks.registry import task_definition, task_modules

SCORE_CODE = ("tasks.scoring", "tasks.data", "tasks.decoding", "tasks.lm_eval_hooks")
"""The modules every scoring stage runs; a task's own YAMLs and hooks are added per task (`score_stages`)."""


def run_dir(config: ExperimentConfig, checkpoint: str) -> Path:
    """The run directory a checkpoint's scores, answers and judgements go to."""
    return Path(config.out_dir) / "runs" / slug(checkpoint)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def task_stage(kind: str, task: str, checkpoint: str) -> str:
    """The name of the `kind` stage (score, judge, judge_repeat, judge_pairwise) of `checkpoint` on `task`:
    `score/<task>/<checkpoint>`, the checkpoint last so a checkpoint's name may hold slashes."""
    return f"{kind}/{task}/{checkpoint}"


def score_stages(config: ExperimentConfig, checkpoint: PlannedCheckpoint) -> list[Stage]:
    """One scoring stage per task of `checkpoint`; they share one run, so the checkpoint's tasks not done are
    scored together, with one server."""
    folder = run_dir(config, checkpoint.name)
    generation = settings_of(dataclasses.asdict(config.eval))
    backend = config.eval.backend if config.eval.backend != "endpoint" else server_label(config.eval.server)
    decoding = dataclasses.asdict(eval_decoding(eval_config(config, config.model)))
    del decoding["max_tokens"]  # not what caps an answer: lm-eval's max_gen_toks, the eval's or each task's own
    run = functools.partial(_score_checkpoint, config, checkpoint)
    stages = []
    for task in config.tasks:
        inputs = {"kind": "score", "model": checkpoint.name if checkpoint.producer else config.model,
                  "generation": generation, "task": task, "limit": config.limit,
                  "data": _source_identity(benchmark_source(task, config.data_dir)),
                  "version": code_version(*SCORE_CODE, *task_modules(task), files=task_definition(task))}
        stages.append(Stage(task_stage("score", task, checkpoint.name), "score", checkpoint.name, backend,
                            config.eval.num_concurrent,
                            {**decoding, "max_gen_toks": config.eval.max_gen_toks or task_max_gen_toks(task)},
                            folder, folder / f"score.{task}.stage.json", inputs,
                            [folder / "lm_eval" / f"samples_{task}.jsonl"], extra={"task": task},
                            entries=[JsonEntry(folder / "scores.json", ("tasks", task))],
                            upstream=[checkpoint.producer], run=run))
    return stages


def _score_checkpoint(config: ExperimentConfig, checkpoint: PlannedCheckpoint, stages: list[Stage],
                      console: Console) -> None:
    """Evaluate the checkpoint on the tasks of `stages` (lm-eval's cache resumes a half-done run); scores.json
    keeps the other tasks' scores beside theirs.

    A task whose scores are missing from scores.json is not done (`Stage.entries`), so it is among those
    scored here: no task's scores are dropped by the rewrite.
    """
    folder, todo = run_dir(config, checkpoint.name), [stage.extra["task"] for stage in stages]
    console.rule(escape(f"scoring {checkpoint.name}" + ("" if todo == list(config.tasks) else f" on {', '.join(todo)}")))
    earlier = json_object(folder / "scores.json", "tasks")
    kept = {task: earlier[task] for task in config.tasks if task not in todo and task in earlier}
    run_info = {"model": checkpoint.name, "arm": checkpoint.arm, "iteration": checkpoint.iteration,
                "train_stats": checkpoint.train_stats()}
    path = checkpoint.path if checkpoint.producer else resolve_model(checkpoint.path)
    scores = run_eval(dataclasses.replace(eval_config(config, path), tasks=todo), folder, console, run_info=run_info)
    write_json(folder / "scores.json", {**scores, "tasks": dict(sorted({**kept, **scores["tasks"]}.items()))})
    write_json(folder / "run.json", {**json_object(folder / "run.json"), "tasks": list(config.tasks)})


def _source_identity(source: Path | str | None) -> str | None:
    """A local benchmark file by its content; a Hub dataset by its id (its revision is not pinned)."""
    return file_digest(source) if isinstance(source, Path) else source
