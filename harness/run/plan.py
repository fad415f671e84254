"""The experiment's graph: every stage in run order, each with its upstream, fingerprint and run, computed
without loading a model.

`selflengthen run EXPERIMENT.yaml --plan [--json]` prints the graph's status; `run` executes the same
objects (harness/run/execute.py), redoing the stale ones (harness/run/stages.py says how a stage's status
is decided). The arms (`ARMS`) add the stages that produce checkpoints; every checkpoint is then scored on
every task (harness/run/scores.py), judged (harness/run/judge_stages.py) and ranked on the leaderboard.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.errors import UserError
from harness.run.baselines import baseline_stages
from harness.run.experiment_config import ExperimentConfig
from harness.run.judge_stages import judge_stages
from harness.run.scores import run_dir, score_stages
from harness.run.stages import DONE, PlannedCheckpoint, Stage
from harness.run.train import TrainRunConfig, synthesis_stage, training_stages


@dataclass
class Graph:
    """The stages planned so far, in run order, and the checkpoints they produce."""

    stages: list[Stage] = field(default_factory=list)
    checkpoints: list[PlannedCheckpoint] = field(default_factory=list)

    def stage(self, name: str) -> Stage | None:
        return next((stage for stage in self.stages if stage.name == name), None)


def base_arm(config: ExperimentConfig, graph: Graph) -> None:
    """The base model itself, scored as it is (no stage produces it)."""
    if config.arms.base:
        graph.checkpoints.append(PlannedCheckpoint("base", config.model, "base", None, None))


def self_lengthen_arm(config: ExperimentConfig, graph: Graph) -> None:
    """The method: its iterations' Generators and the final model (harness/run/train.py)."""
    if config.arms.self_lengthen:
        stages, checkpoints = training_stages(training_config(config))
        graph.stages += stages
        graph.checkpoints += checkpoints


def backtranslation_arm(config: ExperimentConfig, graph: Graph) -> None:
    """Instruction backtranslation (harness/run/baselines.py)."""
    if config.arms.backtranslation:
        _add_baseline(config, graph, "backtranslation", None)


def imitation_arm(config: ExperimentConfig, graph: Graph) -> None:
    """Behaviour imitation, whose teacher answers Self-Lengthen's first instructions when that arm runs."""
    if config.arms.imitation:
        _add_baseline(config, graph, "imitation", graph.stage(synthesis_stage(1)))


ARMS: tuple[Callable[[ExperimentConfig, Graph], None], ...] = (base_arm, self_lengthen_arm, backtranslation_arm,
                                                               imitation_arm)
"""What produces the checkpoints, in run order: each adds its stages and checkpoints to the graph. Every
checkpoint is then scored, judged and ranked, so a new arm is one function added here."""


def plan_stages(config: ExperimentConfig) -> tuple[list[Stage], list[PlannedCheckpoint]]:
    """The experiment's stages in execution order, and the checkpoints they produce."""
    graph = Graph()
    for arm in ARMS:
        arm(config, graph)
    scored = [(checkpoint, score_stages(config, checkpoint)) for checkpoint in graph.checkpoints]
    graph.stages += [stage for _, scores in scored for stage in scores]
    judged = judge_stages(config, scored) if config.judge_enabled else []
    graph.stages += judged
    board = Path(config.out_dir) / "leaderboard"
    graph.stages.append(Stage("leaderboard", "leaderboard", "-", None, None, None, board, board / "stage.json",
                              {"kind": "leaderboard"}, [board / "leaderboard.json"],
                              upstream=[stage for _, scores in scored for stage in scores] + judged,
                              run=functools.partial(_render_leaderboard, config, scored), after_skipped=True,
                              every_time=True))
    return graph.stages, graph.checkpoints


def training_config(config: ExperimentConfig) -> TrainRunConfig:
    """What the Self-Lengthen arm runs: the method's section with its work folder and the experiment's seed."""
    method = dataclasses.replace(config.self_lengthen, work_dir=str(Path(config.out_dir) / "train" / "self_lengthen"),
                                 seed=config.self_lengthen.seed + config.seed)
    return TrainRunConfig(model=config.model, backend=config.backend, method=method, matched_budget=config.matched_budget)


def _add_baseline(config: ExperimentConfig, graph: Graph, arm: str, instructions: Stage | None) -> None:
    stages, checkpoint = baseline_stages(config, arm, instructions)
    graph.stages += stages
    graph.checkpoints.append(checkpoint)


def _scored_run_dirs(config: ExperimentConfig, scored: list[tuple[PlannedCheckpoint, list[Stage]]]) -> list[Path]:
    """The run directories of the checkpoints scored on every task (an arm skipped has none)."""
    return [run_dir(config, checkpoint.name) for checkpoint, scores in scored
            if all(stage.status == DONE for stage in scores)]


def _render_leaderboard(config: ExperimentConfig, scored: list[tuple[PlannedCheckpoint, list[Stage]]],
                        stages: list[Stage], console: Console) -> None:
    from leaderboard.errors import LeaderboardError
    from leaderboard.publish import publish
    from tasks.metadata import declared_demand_ranges

    try:
        publish(_scored_run_dirs(config, scored), None, Path(config.out_dir) / "leaderboard", declared_demand_ranges())
    except LeaderboardError as exc:
        raise UserError(str(exc)) from None


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


def _concurrency(stage: Stage) -> str | None:
    if stage.concurrency is None:
        return None
    return f"concurrency {stage.concurrency}" + (f" x{stage.extra['repeats']} repeats" if "repeats" in stage.extra else "")


def _short(sampling: dict | None) -> str | None:
    if not sampling:
        return None
    return ", ".join(f"{k}={v}" for k, v in sampling.items() if v not in (None, [], {}))
