"""Every stage of an experiment in order, with its expected fingerprint, computed without loading a model.

`selflengthen run EXPERIMENT.yaml --plan [--json]` prints these; `run` executes them, redoing the
stale ones (harness/run/stages.py says how a stage's status is decided), and refuses to run a stage
this plan does not declare. What both read from the config is derived once, here
(`training_config`, `arm_settings`) or in harness/run/train.py (`training_stages`, `iteration_seed`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.run.experiment_config import ExperimentConfig
from harness.run.stages import (JsonEntry, PlannedCheckpoint, Stage, code_version, file_digest, package_version,
                                settings_of, upstream_fingerprint)
from harness.run.train import (TRAINER, TrainRunConfig, matched_extra, synthesis_backend_name, synthesis_stage,
                               training_settings, training_stages)
from harness.scoring.judging import (JUDGE_PAIRWISE, JUDGE_RELIABILITY, JUDGE_SANITY, JudgeRunConfig, judge_servers,
                                     reliability_server)
from harness.serving.serve import server_label
from harness.synthesis.backends import backend_settings
from judges.reliability import ReliabilityConfig
from judges.rubric import rubric_for_task
from selflengthen.baselines import BacktranslationConfig, ImitationConfig
from selflengthen.pipeline import INITIAL_ANSWERS
from tasks.data import benchmark_source
from tasks.registry import task_definition, task_modules


BASELINE_TRAIN_CODE = ("selflengthen.baselines.fine_tune", "selflengthen.merge", "selflengthen.sft_data")
"""The modules a baseline's training stage runs (its data stage runs `selflengthen.baselines.<arm>`)."""


def plan_stages(config: ExperimentConfig) -> tuple[list[Stage], list[PlannedCheckpoint]]:
    """The experiment's stages in execution order, and the checkpoints they produce."""
    out = Path(config.out_dir)
    stages: list[Stage] = []
    checkpoints: list[PlannedCheckpoint] = []
    if config.arms.base:
        checkpoints.append(PlannedCheckpoint("base", config.model, "base", None, None))
    if config.arms.self_lengthen:
        method_stages, method_checkpoints = training_stages(training_config(config))
        stages += method_stages
        checkpoints += method_checkpoints
    for arm in ("backtranslation", "imitation"):
        if getattr(config.arms, arm):
            upstream = _stage(stages, synthesis_stage(1)) if arm == "imitation" else None
            stages += _baseline(config, arm, out / "train" / arm, upstream, checkpoints)
    scored = [_scores(config, checkpoint, out / "runs" / slug(checkpoint.name)) for checkpoint in checkpoints]
    stages += [stage for scores in scored for stage in scores]
    judged = []
    if config.judge_enabled:
        tasks = [index for index, task in enumerate(config.tasks) if _judged_task(config.judge, task)]
        base = next((scores for scores, checkpoint in zip(scored, checkpoints) if checkpoint.arm == "base"), None)
        judged = [_judge(config, scores[i], checkpoint, base[i] if base else None)
                  for scores, checkpoint in zip(scored, checkpoints) for i in tasks]
        if config.judge.repeat:
            judged += [_judge_repeat(config, scores[i], checkpoint)
                       for scores, checkpoint in zip(scored, checkpoints) for i in tasks]
        if config.judge.pairwise and base is not None:
            judged += [_judge_pairwise(config, scores[i], base[i], checkpoint)
                       for scores, checkpoint in zip(scored, checkpoints) if checkpoint.arm != "base" for i in tasks]
        servers = judge_servers(config.judge, list(dict.fromkeys(stage.kind for stage in judged)))
        for number, (_, kinds) in enumerate(servers, 1):  # as `run` starts them: one for every pass that can share it
            for stage in [stage for stage in judged if stage.kind in kinds]:
                stage.extra["judge_server"] = f"{number} of {len(servers)}: {', '.join(kinds)}"
    stages += judged
    board = out / "leaderboard"
    stages.append(Stage("leaderboard", "leaderboard", "-", None, None, None, board, board / "stage.json",
                        {"kind": "leaderboard", "upstream": [s.fingerprint for s in stages if s.kind == "score"]
                         + [s.fingerprint for s in judged]},
                        [board / "leaderboard.json"]))
    return stages, checkpoints


def training_config(config: ExperimentConfig) -> TrainRunConfig:
    """What the Self-Lengthen arm runs: the method's section with its work folder and the experiment's seed."""
    method = dataclasses.replace(config.self_lengthen, work_dir=str(Path(config.out_dir) / "train" / "self_lengthen"),
                                 seed=config.self_lengthen.seed + config.seed)
    return TrainRunConfig(model=config.model, backend=config.backend, method=method, matched_budget=config.matched_budget)


def arm_settings(config: ExperimentConfig, arm: str) -> BacktranslationConfig | ImitationConfig:
    """A baseline's section with the experiment's seed added."""
    settings = getattr(config, arm)
    return dataclasses.replace(settings, seed=settings.seed + config.seed)


def imitation_instructions(config: ExperimentConfig) -> Path:
    """The instructions Self-Lengthen's Generator answered in iteration 1 (the seeds too with include_seeds):
    the imitation teacher answers the same ones, so both arms learn from answers to one instruction set."""
    return Path(training_config(config).method.work_dir) / "iter_1" / f"{INITIAL_ANSWERS}.jsonl"


def _baseline(config: ExperimentConfig, arm: str, work: Path, instructions: Stage | None,
              checkpoints: list[PlannedCheckpoint]) -> list[Stage]:
    settings = arm_settings(config, arm)
    section = settings_of(dataclasses.asdict(settings), drop=("train", "seed", "corpus", "instructions_file",
                                                              "seed_files"))
    inputs = {"kind": f"{arm}_data", "model": config.model, "settings": section, "seed": settings.seed,
              "backend": settings_of(backend_settings(config.backend)),
              "version": code_version(f"selflengthen.baselines.{arm}")}
    if arm == "backtranslation":
        inputs["corpus"] = file_digest(settings.corpus) if settings.corpus else None
    if arm == "imitation":
        inputs["seed_files"] = {lang: file_digest(path) for lang, path in sorted(settings.seed_files.items())}
        inputs["upstream"] = [upstream_fingerprint(instructions)] if settings.instructions_file is None else []
        if settings.instructions_file:
            inputs["instructions"] = file_digest(settings.instructions_file)
    data = Stage(f"{arm}/data", f"{arm}_data", config.model, synthesis_backend_name(config.backend),
                 settings.max_in_flight, dataclasses.asdict(settings.sampling), work, work / "stage.json", inputs, [work])
    adapter = work / "adapter"
    train = Stage(f"{arm}/train", "train", config.model, TRAINER, None, None, adapter, adapter / "stage.json",
                  {"kind": "train", "model": config.model, "settings": training_settings(settings.train),
                   "upstream": [data.fingerprint], "version": code_version(*BASELINE_TRAIN_CODE),
                   **config.matched_budget.stage_inputs()},
                  [adapter, work / "merged"], extra=matched_extra(config.matched_budget))
    checkpoints.append(PlannedCheckpoint(arm, str(work / "merged"), arm, None, train))
    return [data, train]


SCORE_CODE = ("tasks.scoring", "tasks.data", "tasks.decoding", "tasks.lm_eval_hooks")
"""The modules every scoring stage runs; a task's own YAMLs and hooks are added per task (`_scores`)."""


def _scores(config: ExperimentConfig, checkpoint: PlannedCheckpoint, run_dir: Path) -> list[Stage]:
    """One scoring stage per task: adding a task scores only it, and an edit to one task's YAML or rows
    re-scores only that task. The stages of one checkpoint run together, with one server."""
    from harness.run.experiment_config import eval_config
    from harness.scoring.evaluate import eval_decoding
    from tasks.decoding import task_max_gen_toks

    generation = settings_of(dataclasses.asdict(config.eval))
    backend = config.eval.backend if config.eval.backend != "endpoint" else server_label(config.eval.server)
    decoding = dataclasses.asdict(eval_decoding(eval_config(config, config.model)))
    del decoding["max_tokens"]  # not what caps an answer: lm-eval's max_gen_toks, the eval's or each task's own
    stages = []
    for task in config.tasks:
        inputs = {"kind": "score", "model": checkpoint.name if checkpoint.producer else config.model,
                  "upstream": [upstream_fingerprint(checkpoint.producer)], "generation": generation,
                  "task": task, "limit": config.limit,
                  "data": _source_identity(benchmark_source(task, config.data_dir)),
                  "version": code_version(*SCORE_CODE, *task_modules(task), files=task_definition(task))}
        stages.append(Stage(task_stage("score", task, checkpoint.name), "score", checkpoint.name, backend,
                            config.eval.num_concurrent,
                            {**decoding, "max_gen_toks": config.eval.max_gen_toks or task_max_gen_toks(task)},
                            run_dir, run_dir / f"score.{task}.stage.json", inputs,
                            [run_dir / "lm_eval" / f"samples_{task}.jsonl"], extra={"task": task},
                            entries=[JsonEntry(run_dir / "scores.json", ("tasks", task))]))
    return stages


def task_stage(kind: str, task: str, checkpoint: str) -> str:
    """The name of the `kind` stage (score, judge, judge_repeat, judge_pairwise) of `checkpoint` on `task`:
    `score/<task>/<checkpoint>`, the checkpoint last so a checkpoint's name may hold slashes."""
    return f"{kind}/{task}/{checkpoint}"


def _judged_task(judge: JudgeRunConfig, task: str) -> bool:
    """Whether the judge grades `task`: every task with a fixed rubric, else those with a packaged one
    (longwrite_ruler has none), so a task it skips has no judge stage that could never be done."""
    return judge.rubric != "auto" or rubric_for_task(task) is not None


def _judge_settings(judge: JudgeRunConfig) -> dict:
    """The judge section as it decides the replies: its server's kind and arguments too (they decide
    schema-constrained, logprob-weighted replies and the judge's precision) unless an endpoint is given."""
    return settings_of(dataclasses.asdict(judge), drop=("cache_path",) + (("server",) if judge.endpoint else ()))


def _judge(config: ExperimentConfig, score: Stage, checkpoint: PlannedCheckpoint, base: Stage | None) -> Stage:
    """One task of one checkpoint judged, with its sanity check; the report files hold every task, each its entry."""
    judge, task, run_dir = config.judge, score.extra["task"], score.output
    upstream = [score.fingerprint]
    if judge.sanity_scope == "base" and checkpoint.arm != "base" and base is not None:
        upstream.append(base.fingerprint)  # its sanity verdict comes from the base arm's answers to the task
    inputs = {"kind": "judge", "upstream": upstream, "settings": _judge_settings(judge),
              "version": package_version("judges")}
    sampling = {"temperature": 0.0, "max_tokens": judge.max_tokens, "retry_temperature": judge.retry_temperature,
                "max_retries": judge.max_retries}
    entries = [JsonEntry(run_dir / "judgements.json", ("tasks", task))]
    if judge.sanity_subset:
        entries.append(JsonEntry(run_dir / JUDGE_SANITY, ("tasks", task)))
    return _judge_stage("judge", score, checkpoint, judge, _judge_backend(config), sampling, inputs, entries,
                        {"sanity_subset": judge.sanity_subset, "sanity_scope": judge.sanity_scope})


def _judge_pairwise(config: ExperimentConfig, score: Stage, base: Stage, checkpoint: PlannedCheckpoint) -> Stage:
    judge = config.judge
    inputs = {"kind": "judge_pairwise", "upstream": [score.fingerprint, base.fingerprint],
              "settings": _judge_settings(judge), "version": package_version("judges")}
    sampling = {"temperature": 0.0, "max_tokens": judge.max_tokens}
    return _judge_stage("judge_pairwise", score, checkpoint, judge, _judge_backend(config), sampling, inputs,
                        [JsonEntry(score.output / JUDGE_PAIRWISE, ("tasks", score.extra["task"]))],
                        {"reference": "base"})


def _judge_repeat(config: ExperimentConfig, score: Stage, checkpoint: PlannedCheckpoint) -> Stage:
    judge = config.judge
    reliability = ReliabilityConfig(repeats=judge.repeat, subset_size=judge.repeat_subset)
    inputs = {"kind": "judge_repeat", "upstream": [score.fingerprint],
              "settings": _judge_settings(reliability_server(judge)),
              "repeat": judge.repeat, "repeat_subset": judge.repeat_subset, "version": package_version("judges")}
    sampling = {"temperature": reliability.temperature, "max_tokens": judge.max_tokens}
    backend = _judge_backend(config) + (" (no continuous batching)" if not judge.endpoint and
                                        judge.server.kind == "transformers" else "")
    return _judge_stage("judge_repeat", score, checkpoint, judge, backend, sampling, inputs,
                        [JsonEntry(score.output / JUDGE_RELIABILITY, ("tasks", score.extra["task"]))],
                        {"repeats": judge.repeat})


def _judge_stage(kind: str, score: Stage, checkpoint: PlannedCheckpoint, judge: JudgeRunConfig, backend: str,
                 sampling: dict, inputs: dict, entries: list[JsonEntry], extra: dict) -> Stage:
    """A judging pass over one task of one checkpoint. Its output is its task's entry in the run's report
    (`entries`), not the file: a stale stage leaves the other tasks' entries, and its own is replaced when it runs."""
    task, run_dir = score.extra["task"], score.output
    return Stage(task_stage(kind, task, checkpoint.name), kind, judge.model, backend, judge.max_concurrency, sampling,
                 run_dir, run_dir / f"{kind}.{task}.stage.json", inputs, [], extra={"task": task, **extra},
                 entries=entries)


def print_plan(stages: list[Stage], console: Console, as_json: bool = False) -> None:
    """The plan as a table on `console`, or as JSON on stdout.

    A row per stage holds what differs from stage to stage (name, status, wall seconds) and the number of the
    settings it runs with; each set of settings is written once, under the table, where it may wrap. So the
    plan reads whole in a log or at 80 columns; each stage's output folder and fingerprint are in `--json`.
    """
    if as_json:
        print(json.dumps({"stages": [stage.as_json() for stage in stages]}, indent=2))
        return
    numbers: dict[str, str] = {}  # a settings line -> its number
    table = Table(title="plan", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("stage", overflow="fold")  # a long name (score/<task>/<checkpoint>) folds; the rest stays whole
    for column in ("status", "wall s", "settings"):
        table.add_column(column, no_wrap=True, min_width=len(column), justify="right" if column == "wall s" else "left")
    colours = {"done": "green", "todo": "yellow", "stale": "red"}
    for stage in stages:
        settings = _settings(stage)
        number = numbers.setdefault(settings, str(len(numbers) + 1)) if settings else "-"
        seconds = stage.seconds
        table.add_row(Text(stage.name), Text(stage.status, style=colours[stage.status]),
                      "-" if seconds is None else f"{seconds:.0f}", number)
    console.print(table)
    legend = Table.grid(padding=(0, 1))
    legend.add_column(justify="right", no_wrap=True)
    legend.add_column()
    for settings, number in numbers.items():
        legend.add_row(number, Text(settings))
    console.print(Text("settings: model · backend · concurrency · sampling"), legend)
    console.print(Text("Each stage's output folder, fingerprint and every field: --plan --json."), style="dim")


def _settings(stage: Stage) -> str:
    """What a stage runs with, as one line; a model the stage is named after (score/M scores M) reads as such,
    so the stages that differ only in it share the line."""
    model = "the checkpoint its name ends with" if stage.name.endswith(f"/{stage.model}") else stage.model
    parts = [model, stage.backend, _concurrency(stage), _short(stage.sampling), stage.extra.get("matched_budget"),
             stage.extra.get("judge_server")]
    parts[-2] = parts[-2] and f"matched budget: {parts[-2]}"
    parts[-1] = parts[-1] and f"judge server {parts[-1]}"
    return " · ".join(part for part in parts if part and part != "-")


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def _stage(stages: list[Stage], name: str) -> Stage | None:
    return next((s for s in stages if s.name == name), None)


def _judge_backend(config: ExperimentConfig) -> str:
    return config.judge.endpoint or server_label(config.judge.server)


def _source_identity(source: Path | str | None) -> str | None:
    """A local benchmark file by its content; a Hub dataset by its id (its revision is not pinned)."""
    return file_digest(source) if isinstance(source, Path) else source


def _concurrency(stage: Stage) -> str | None:
    if stage.concurrency is None:
        return None
    return f"concurrency {stage.concurrency}" + (f" x{stage.extra['repeats']} repeats" if "repeats" in stage.extra else "")


def _short(sampling: dict | None) -> str | None:
    if not sampling:
        return None
    return ", ".join(f"{k}={v}" for k, v in sampling.items() if v not in (None, [], {}))
