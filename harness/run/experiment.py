"""`selflengthen run EXPERIMENT.yaml`: train every arm, score every checkpoint, judge, rank.

Arms: the base model, Self-Lengthen's iteration Generators 1..K and its final model (the base
fine-tuned on the length-following data: the paper's headline model), instruction backtranslation and
behaviour imitation. Each stage leaves its outputs in `out_dir` with a fingerprint of what produced them
(harness/run/stages.py): a stage whose fingerprint still matches is skipped, one whose settings or
inputs changed is stale and redone with everything downstream of it, so the same command resumes
after a crash and after the config changes (`--plan` shows which stages would run):

    out_dir/train/<arm>/          synthesis, data and adapters of each trained arm
    out_dir/runs/<checkpoint>/    one run directory per scored checkpoint (docs/run_directory.md)
    out_dir/leaderboard/          leaderboard.json (the truth), .md and .html
    out_dir/experiment.json       what was trained and scored, and what was skipped and why
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.run.execute import execute
from harness.run.experiment_config import ExperimentConfig
from harness.run.plan import plan_stages, training_config
from harness.run.stages import DONE
from harness.run.train import SELF_LENGTHEN_ARMS, register_checkpoints
from harness.scoring.evaluate import check_tasks
from harness.serving.models import check_model_available, resolve_model
from infra.journal import write_json_atomically as write_json
from leaderboard.board import load_leaderboard
from leaderboard.publish import FILE_NAMES
from leaderboard.render_terminal import print_leaderboard


@dataclasses.dataclass
class ScoredCheckpoint:
    """A checkpoint scored and the run.json fields that say where it came from."""

    name: str
    path: str
    arm: str
    iteration: int | None = None
    train_stats: dict | None = None


def run_experiment(config: ExperimentConfig, console: Console | None = None) -> dict:
    """Redo what is stale, train what is missing, score, judge, render the board: the plan's graph, executed.

    `config` comes from `harness.run.experiment_config.load_experiment` (validated, data folder explicit).
    """
    console = console or Console(stderr=True)
    check_model_available(config.model, "model")
    if config.judge_enabled and not config.judge.endpoint:
        check_model_available(config.judge.model, "judge.model")
    check_tasks(config.tasks, config.data_dir)
    stages, planned = plan_stages(config)
    skipped = execute(stages, console)
    checkpoints = [ScoredCheckpoint(c.name, c.path if c.producer else resolve_model(c.path), c.arm, c.iteration,
                                    c.train_stats()) for c in planned if c.producer is None or c.producer.status == DONE]
    if config.arms.self_lengthen:
        register_checkpoints(training_config(config), [c for c in planned if c.arm in SELF_LENGTHEN_ARMS])
    board = Path(config.out_dir) / "leaderboard"
    paths = {kind: board / name for kind, name in FILE_NAMES.items()}
    print_leaderboard(load_leaderboard(paths["json"]), console)
    console.print(escape(f"leaderboard: {paths['markdown']} and {paths['html']}"))
    summary = {
        "checkpoints": [dataclasses.asdict(c) for c in checkpoints],
        "skipped": skipped,
        "leaderboard": {kind: str(path) for kind, path in paths.items()},
    }
    write_json(Path(config.out_dir) / "experiment.json", summary)
    return summary
