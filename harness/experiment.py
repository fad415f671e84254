"""`selflengthen run EXPERIMENT.yaml`: train every arm, score every checkpoint, judge, rank.

Arms: the base model, Self-Lengthen iterations 1..K, instruction backtranslation and behaviour
imitation. Each stage leaves its outputs in `out_dir` and is skipped when they are there, so
the same command resumes after a crash or after the config grows (a new arm, a new task):

    out_dir/train/<arm>/          synthesis, data and adapters of each trained arm
    out_dir/runs/<checkpoint>/    one run directory per scored checkpoint (docs/run_directory.md)
    out_dir/leaderboard/          leaderboard.json (the truth), .md and .html
    out_dir/experiment.json       what was trained and scored, and what was skipped and why
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from harness.errors import UserError
from harness.evaluate import EvalConfig, run_eval
from harness.judging import JudgeRunConfig, judge_endpoint, judge_run
from harness.models import DEFAULT_MODEL, resolve_model
from infra.journal import write_json_atomically as write_json
from harness.train import (
    NoTrainingData,
    SynthesisBackendConfig,
    TrainRunConfig,
    merge_once,
    role_backends,
    run_training,
)
from selflengthen.baselines import (
    BacktranslationConfig,
    ImitationConfig,
    build_backtranslation_data,
    build_imitation_data,
    train_baseline,
)
from selflengthen.config import SelfLengthenConfig


@dataclass
class ArmsConfig:
    """Which arms to train and score."""

    base: bool = field(default=True, metadata={"help": "Score the untouched base model (the reference row)."})
    self_lengthen: bool = field(default=True, metadata={"help": "Self-Lengthen iterations 1..K."})
    backtranslation: bool = field(default=True, metadata={"help": "Instruction backtranslation baseline."})
    imitation: bool = field(default=True, metadata={"help": "Behaviour imitation (AgentWrite) baseline."})


@dataclass
class ExperimentConfig:
    """One experiment: a base model, its arms, the tasks, the judge and where it all goes.

    Fields:
        model, out_dir, seed: the base model, the output folder, a seed added to every arm's.
        arms: which arms run.
        tasks, limit, eval: what every checkpoint is scored on, and how answers are generated.
        backend: synthesis backend of every trained arm (in-process on CPU, endpoint on GPU).
        self_lengthen, backtranslation, imitation: each arm's own settings.
        judge: the LLM judge; `enabled: false` skips quality scores.
    """

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Base model: Hub id, local path or smollm2-135m."})
    out_dir: str = field(default="runs/experiment", metadata={"help": "Where everything is written."})
    seed: int = field(default=0, metadata={"help": "Added to every arm's seed."})
    data_dir: str | None = field(default=None, metadata={"help": "Benchmark/seed files (else SELFLENGTHEN_DATA_DIR)."})
    arms: ArmsConfig = field(default_factory=ArmsConfig, metadata={"help": "Which arms run."})
    tasks: list[str] = field(default_factory=lambda: ["longbench_write_en_mini", "longen_mini"], metadata={"help": "Tasks."})
    limit: int | None = field(default=None, metadata={"help": "Documents per task at most."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Answer generation (model/tasks/limit are set here)."})
    backend: SynthesisBackendConfig = field(default_factory=SynthesisBackendConfig, metadata={"help": "Synthesis backend."})
    self_lengthen: SelfLengthenConfig = field(default_factory=SelfLengthenConfig, metadata={"help": "Self-Lengthen."})
    backtranslation: BacktranslationConfig = field(default_factory=BacktranslationConfig, metadata={"help": "Backtranslation."})
    imitation: ImitationConfig = field(default_factory=ImitationConfig, metadata={"help": "Behaviour imitation."})
    judge: JudgeRunConfig = field(default_factory=JudgeRunConfig, metadata={"help": "LLM judge."})
    judge_enabled: bool = field(default=True, metadata={"help": "Judge quality (false: length scores only)."})


@dataclass
class ScoredCheckpoint:
    """A checkpoint to score and the run.json fields that say where it came from."""

    name: str
    path: str
    arm: str
    iteration: int | None = None
    train_stats: dict | None = None


def run_experiment(config: ExperimentConfig, console: Console | None = None) -> dict:
    """Train what is missing, score what is not scored, judge what is not judged, render the board."""
    console = console or Console(stderr=True)
    if config.data_dir:
        import os

        os.environ["SELFLENGTHEN_DATA_DIR"] = str(Path(config.data_dir).resolve())
    out = Path(config.out_dir)
    base = resolve_model(config.model)
    checkpoints, skipped = train_arms(config, base, out, console)
    run_dirs = [score_checkpoint(c, config, out / "runs" / _slug(c.name), console) for c in checkpoints]
    if config.judge_enabled:
        judge_runs(config, run_dirs, out, console)
    paths = render_leaderboard(run_dirs, out / "leaderboard", console)
    summary = {
        "checkpoints": [dataclasses.asdict(c) for c in checkpoints],
        "skipped": skipped,
        "leaderboard": {kind: str(path) for kind, path in paths.items()},
    }
    write_json(out / "experiment.json", summary)
    return summary


def train_arms(config: ExperimentConfig, base: str, out: Path, console: Console
               ) -> tuple[list[ScoredCheckpoint], dict[str, str]]:
    """Every enabled arm's checkpoints, training what is missing; arms without data are skipped, with why."""
    checkpoints: list[ScoredCheckpoint] = []
    skipped: dict[str, str] = {}
    if config.arms.base:
        checkpoints.append(ScoredCheckpoint("base", base, "base"))
    if config.arms.self_lengthen:
        method = dataclasses.replace(config.self_lengthen, work_dir=str(out / "train" / "self_lengthen"),
                                     seed=config.self_lengthen.seed + config.seed)
        try:
            trained = run_training(TrainRunConfig(model=config.model, backend=config.backend, method=method), console)
        except NoTrainingData as exc:
            trained = exc.checkpoints
            skipped["self_lengthen"] = f"stopped after {len(trained)} iteration(s): {exc}"
            console.print(f"[yellow]self_lengthen stopped early:[/] {exc}")
        checkpoints += [ScoredCheckpoint(f"self_lengthen/{c.name}", c.path, "self_lengthen", c.iteration, c.train_stats)
                        for c in trained]
    for arm in ("backtranslation", "imitation"):
        if not getattr(config.arms, arm):
            continue
        try:
            checkpoints.append(train_baseline_arm(arm, config, base, out / "train" / arm, console))
        except _NoTrainingData as exc:
            skipped[arm] = str(exc)
            console.print(f"[yellow]{arm} skipped:[/] {exc}")
    return checkpoints, skipped


class _NoTrainingData(Exception):
    """A baseline's data step kept no training sample, so there is nothing to train or score."""


def train_baseline_arm(arm: str, config: ExperimentConfig, base: str, work: Path, console: Console) -> ScoredCheckpoint:
    """Build the baseline's data with the base model, fine-tune, merge, and return the checkpoint."""
    settings = getattr(config, arm)
    settings = dataclasses.replace(settings, seed=settings.seed + config.seed)
    if arm == "imitation" and settings.instructions_file is None and config.arms.self_lengthen:
        instructions = out_instructions(config)
        if _has_instructions(instructions):
            settings = dataclasses.replace(settings, instructions_file=str(instructions))
    if not (work / "stats.json").is_file() or not (work / "data.jsonl").is_file():
        build = build_backtranslation_data if arm == "backtranslation" else build_imitation_data
        with console.status(f"{arm}: building training data"), _base_backend(base, config, work) as model:
            asyncio.run(build(model, settings, work))
    stats = json.loads((work / "stats.json").read_text(encoding="utf-8"))
    if not stats.get("samples"):
        outcomes = ", ".join(f"{k} {v}" for k, v in stats.get("outcomes", {}).items()) or "no items"
        raise _NoTrainingData(f"no training sample was kept ({outcomes}); see {work}")
    with console.status(f"{arm}: fine-tuning"):
        train_stats = train_baseline(work, base, settings.train)
    merged = merge_once(base, work / "adapter", work / "merged")
    return ScoredCheckpoint(arm, str(merged), arm, None, train_stats)


def out_instructions(config: ExperimentConfig) -> Path:
    """Self-Lengthen's first-iteration instructions: the imitation teacher answers the same ones."""
    return Path(config.out_dir) / "train" / "self_lengthen" / "iter_1" / "instructions.jsonl"


@contextlib.contextmanager
def _base_backend(base: str, config: ExperimentConfig, work: Path) -> Iterator:
    with role_backends(base, {"generator": None, "extender": None}, config.backend, work) as (model, _):
        yield model


def score_checkpoint(checkpoint: ScoredCheckpoint, config: ExperimentConfig, run_dir: Path, console: Console) -> Path:
    """Evaluate one checkpoint into its run directory (lm-eval's cache resumes a half-done one)."""
    if (run_dir / "scores.json").is_file() and _scored_tasks(run_dir) >= set(config.tasks):
        return run_dir
    console.rule(f"scoring {checkpoint.name}")
    eval_config = dataclasses.replace(config.eval, model=checkpoint.path, tasks=list(config.tasks), limit=config.limit,
                                      data_dir=config.data_dir, endpoint=None)
    run_info = {"model": checkpoint.name, "arm": checkpoint.arm, "iteration": checkpoint.iteration,
                "train_stats": checkpoint.train_stats}
    run_eval(eval_config, run_dir, console, run_info=run_info)
    return run_dir


def judge_runs(config: ExperimentConfig, run_dirs: list[Path], out: Path, console: Console) -> None:
    """Judge every run without judgements.json, with one judge server for all of them."""
    todo = [d for d in run_dirs if not (d / "judgements.json").is_file()]
    if not todo:
        return
    console.rule(f"judging {len(todo)} run(s) with {config.judge.model}")
    with judge_endpoint(config.judge, out / "judge_server.log") as endpoint:
        for run_dir in todo:
            judge_run(run_dir, endpoint, config.judge, console)


def render_leaderboard(run_dirs: list[Path], out: Path, console: Console) -> dict[str, Path]:
    from leaderboard.board import load_leaderboard
    from leaderboard.errors import LeaderboardError
    from leaderboard.publish import publish
    from leaderboard.render_terminal import print_leaderboard

    try:
        paths = publish(run_dirs, None, out)
    except LeaderboardError as exc:
        raise UserError(str(exc)) from None
    print_leaderboard(load_leaderboard(paths["json"]), console)
    console.print(f"leaderboard: {paths['markdown']} and {paths['html']}")
    return paths


def _has_instructions(path: Path) -> bool:
    if not path.is_file():
        return False
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return any(row.get("instruction") for row in rows)


def _scored_tasks(run_dir: Path) -> set[str]:
    return set(json.loads((run_dir / "scores.json").read_text(encoding="utf-8")).get("tasks", {}))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
