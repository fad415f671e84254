"""Every stage of an experiment in order, with its expected fingerprint, computed without loading a model.

`selflengthen run EXPERIMENT.yaml --plan [--json]` prints these; `run` executes them, redoing the
stale ones (harness/stages.py says how a stage's status is decided).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.experiment_config import ExperimentConfig
from harness.stages import Stage, files_version, settings_of
from harness.synthesis_backends import ROLES
from harness.train import synthesis_stage, train_stage
from judges.reliability import ReliabilityConfig

TRAINER = "trl (LoRA)"


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint to score: its name, the folder it will be in, and the stage that produces it."""

    name: str
    path: str
    arm: str
    iteration: int | None
    producer: Stage | None


def plan_stages(config: ExperimentConfig) -> tuple[list[Stage], list[Checkpoint]]:
    """The experiment's stages in execution order, and the checkpoints they produce."""
    out = Path(config.out_dir)
    prompts = files_version(_package_dir("selflengthen") / "prompts")
    stages: list[Stage] = []
    checkpoints: list[Checkpoint] = []
    if config.arms.base:
        checkpoints.append(Checkpoint("base", config.model, "base", None, None))
    if config.arms.self_lengthen:
        stages += _self_lengthen(config, out / "train" / "self_lengthen", prompts, checkpoints)
    for arm in ("backtranslation", "imitation"):
        if getattr(config.arms, arm):
            upstream = _stage(stages, synthesis_stage(1)) if arm == "imitation" else None
            stages += _baseline(config, arm, out / "train" / arm, prompts, upstream, checkpoints)
    scored = []
    for checkpoint in checkpoints:
        scored.append(_score(config, checkpoint, out / "runs" / slug(checkpoint.name)))
    stages += scored
    judged = []
    if config.judge_enabled:
        base = next((stage for stage, checkpoint in zip(scored, checkpoints) if checkpoint.arm == "base"), None)
        judged = [_judge(config, stage, checkpoint, base) for stage, checkpoint in zip(scored, checkpoints)]
        if config.judge.repeat:
            judged += [_judge_repeat(config, stage, checkpoint) for stage, checkpoint in zip(scored, checkpoints)]
        if config.judge.pairwise and base is not None:
            judged += [_judge_pairwise(config, stage, base, checkpoint)
                       for stage, checkpoint in zip(scored, checkpoints) if checkpoint.arm != "base"]
    stages += judged
    board = out / "leaderboard"
    stages.append(Stage("leaderboard", "leaderboard", "-", None, None, None, board, board / "stage.json",
                        {"kind": "leaderboard", "upstream": [s.fingerprint for s in scored + judged]},
                        [board / "leaderboard.json"]))
    return stages, checkpoints


def _self_lengthen(config: ExperimentConfig, work: Path, prompts: str, checkpoints: list[Checkpoint]) -> list[Stage]:
    method = config.self_lengthen
    backend = _synthesis_backend(config)
    settings = settings_of(dataclasses.asdict(method), drop=("iterations", "work_dir", "train", "final_data", "seed"))
    previous: dict[str, Stage | None] = {role: None for role in ROLES}
    stages = []
    for k in range(1, method.iterations + 1):
        it_dir = work / f"iter_{k}"
        inputs = {"kind": "synthesis", "model": config.model, "settings": settings,
                  "seed": method.seed + config.seed + k, "backend": settings_of(dataclasses.asdict(config.backend)),
                  "upstream": [_fp(previous[role]) for role in ROLES], "version": prompts}
        synthesis = Stage(synthesis_stage(k), "synthesis", _roles_model(config.model, k), backend,
                          method.max_in_flight, dataclasses.asdict(method.sampling), it_dir, it_dir / "stage.json",
                          inputs, [it_dir], extra={"roles": {role: {"concurrency": method.max_in_flight}
                                                         for role in ROLES}})
        stages.append(synthesis)
        for role in ROLES:
            adapter = it_dir / f"{role}_adapter"
            outputs = [adapter] + ([it_dir / "generator_merged"] if role == "generator" else [])
            inputs = {"kind": "train", "role": role, "model": config.model,
                      "settings": settings_of(dataclasses.asdict(method.train)),
                      "upstream": [synthesis.fingerprint, _fp(previous[role])]}
            previous[role] = Stage(train_stage(k, role), "train", config.model, TRAINER, None, None, adapter,
                                   adapter / "stage.json", inputs, outputs)
            stages.append(previous[role])
        checkpoints.append(Checkpoint(f"self_lengthen/iter_{k}/generator", str(it_dir / "generator_merged"),
                                      "self_lengthen", k, previous["generator"]))
    return stages


def _baseline(config: ExperimentConfig, arm: str, work: Path, prompts: str, instructions: Stage | None,
              checkpoints: list[Checkpoint]) -> list[Stage]:
    settings = getattr(config, arm)
    section = settings_of(dataclasses.asdict(settings), drop=("train", "seed"))
    inputs = {"kind": f"{arm}_data", "model": config.model, "settings": section, "seed": settings.seed + config.seed,
              "backend": settings_of(dataclasses.asdict(config.backend)), "version": prompts}
    if arm == "backtranslation" and settings.corpus:
        inputs["corpus"] = _file_identity(settings.corpus)
    if arm == "imitation":
        inputs["upstream"] = [_fp(instructions)] if settings.instructions_file is None else []
        if settings.instructions_file:
            inputs["instructions"] = _file_identity(settings.instructions_file)
    data = Stage(f"{arm}/data", f"{arm}_data", config.model, _synthesis_backend(config), settings.max_in_flight,
                 dataclasses.asdict(settings.sampling), work, work / "stage.json", inputs, [work])
    adapter = work / "adapter"
    train = Stage(f"{arm}/train", "train", config.model, TRAINER, None, None, adapter, adapter / "stage.json",
                  {"kind": "train", "model": config.model, "settings": settings_of(dataclasses.asdict(settings.train)),
                   "upstream": [data.fingerprint]}, [adapter, work / "merged"])
    checkpoints.append(Checkpoint(arm, str(work / "merged"), arm, None, train))
    return [data, train]


def _score(config: ExperimentConfig, checkpoint: Checkpoint, run_dir: Path) -> Stage:
    generation = settings_of(dataclasses.asdict(config.eval))
    inputs = {"kind": "score", "model": checkpoint.name if checkpoint.producer else config.model,
              "upstream": [_fp(checkpoint.producer)], "generation": generation,
              "settings": {"tasks": list(config.tasks), "limit": config.limit, "data_dir": config.data_dir},
              "version": files_version(_package_dir("tasks"))}
    backend = config.eval.backend if config.eval.backend != "endpoint" else f"{config.eval.server.kind} serve"
    return Stage(f"score/{checkpoint.name}", "score", checkpoint.name, backend, config.eval.num_concurrent,
                 dataclasses.asdict(config.eval.sampling), run_dir, run_dir / "stage.json", inputs,
                 [run_dir / "scores.json", run_dir / "lm_eval"])


def _judge_settings(config: ExperimentConfig) -> dict:
    return settings_of(dataclasses.asdict(config.judge), drop=("server", "cache_path"))


def _judge(config: ExperimentConfig, score: Stage, checkpoint: Checkpoint, base: Stage | None) -> Stage:
    judge = config.judge
    upstream = [score.fingerprint]
    if judge.sanity_scope == "base" and checkpoint.arm != "base" and base is not None:
        upstream.append(base.fingerprint)  # its sanity verdict comes from the base arm's answers
    inputs = {"kind": "judge", "upstream": upstream, "settings": _judge_settings(config),
              "version": files_version(_package_dir("judges") / "rubrics")}
    sampling = {"temperature": 0.0, "max_tokens": judge.max_tokens, "retry_temperature": judge.retry_temperature,
                "max_retries": judge.max_retries}
    return Stage(f"judge/{checkpoint.name}", "judge", judge.model, _judge_backend(config), judge.max_concurrency,
                 sampling, score.output, score.output / "judge.stage.json", inputs,
                 [score.output / "judgements.json", score.output / "judge_sanity.json"],
                 extra={"sanity_subset": judge.sanity_subset, "sanity_scope": judge.sanity_scope})


def _judge_pairwise(config: ExperimentConfig, score: Stage, base: Stage, checkpoint: Checkpoint) -> Stage:
    judge = config.judge
    inputs = {"kind": "judge_pairwise", "upstream": [score.fingerprint, base.fingerprint],
              "settings": _judge_settings(config), "version": files_version(_package_dir("judges") / "rubrics")}
    sampling = {"temperature": 0.0, "max_tokens": judge.max_tokens}
    return Stage(f"judge_pairwise/{checkpoint.name}", "judge_pairwise", judge.model, _judge_backend(config),
                 judge.max_concurrency, sampling, score.output, score.output / "judge_pairwise.stage.json", inputs,
                 [score.output / "pairwise.json"], extra={"reference": "base"})


def _judge_repeat(config: ExperimentConfig, score: Stage, checkpoint: Checkpoint) -> Stage:
    judge = config.judge
    reliability = ReliabilityConfig(repeats=judge.repeat, subset_size=judge.repeat_subset)
    inputs = {"kind": "judge_repeat", "upstream": [score.fingerprint], "settings": _judge_settings(config),
              "repeat": judge.repeat, "repeat_subset": judge.repeat_subset,
              "version": files_version(_package_dir("judges") / "rubrics")}
    sampling = {"temperature": reliability.temperature, "max_tokens": judge.max_tokens}
    backend = _judge_backend(config) + (" (no continuous batching)" if not judge.endpoint and
                                        judge.server.kind == "transformers" else "")
    return Stage(f"judge_repeat/{checkpoint.name}", "judge_repeat", judge.model, backend, judge.max_concurrency,
                 sampling, score.output, score.output / "judge_repeat.stage.json", inputs,
                 [score.output / "judge_reliability.json"], extra={"repeats": judge.repeat})


def print_plan(stages: list[Stage], console: Console, as_json: bool = False) -> None:
    """The plan as a table on `console`, or as JSON on stdout."""
    if as_json:
        print(json.dumps({"stages": [stage.as_json() for stage in stages]}, indent=2))
        return
    table = Table(title="plan")
    for column in ("stage", "status", "wall s", "model", "backend", "concurrency", "sampling", "output"):
        table.add_column(column)
    colours = {"done": "green", "todo": "yellow", "stale": "red"}
    for stage in stages:
        status = stage.status
        seconds = stage.seconds
        table.add_row(escape(stage.name), f"[{colours[status]}]{status}[/]", "-" if seconds is None else f"{seconds:.0f}",
                      escape(stage.model),
                      escape(stage.backend or "-"), _concurrency(stage), escape(_short(stage.sampling)),
                      escape(str(stage.output)))
    console.print(table)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def _stage(stages: list[Stage], name: str) -> Stage | None:
    return next((s for s in stages if s.name == name), None)


def _fp(stage: Stage | None) -> str | None:
    return stage.fingerprint if stage else None


def _roles_model(model: str, k: int) -> str:
    return model if k == 1 else f"{model} + iter_{k - 1} adapters"


def _synthesis_backend(config: ExperimentConfig) -> str:
    return "inprocess" if config.backend.kind == "inprocess" else f"{config.backend.server.kind} serve"


def _judge_backend(config: ExperimentConfig) -> str:
    return config.judge.endpoint or f"{config.judge.server.kind} serve"


def _file_identity(path: str) -> dict:
    file = Path(path)
    return {"path": str(file.resolve()), "bytes": file.stat().st_size if file.is_file() else None}


def _concurrency(stage: Stage) -> str:
    text = "-" if stage.concurrency is None else str(stage.concurrency)
    return text + (f" x{stage.extra['repeats']} repeats" if "repeats" in stage.extra else "")


def _short(sampling: dict | None) -> str:
    if not sampling:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in sampling.items() if v not in (None, [], {}))


def _package_dir(name: str) -> Path:
    import importlib

    return Path(importlib.import_module(name).__file__).resolve().parent
