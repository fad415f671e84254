"""The baselines' stages: instruction backtranslation's and behaviour imitation's data, then their fine-tuning.

Each arm's data is built with the base model (imitation's teacher answers the instructions Self-Lengthen's
Generator answered in iteration 1, when that arm runs), then the base is fine-tuned on it and merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from harness.errors import UserError
from harness.run.experiment_config import ExperimentConfig
from harness.run.stages import PlannedCheckpoint, Stage, code_version, file_digest, settings_of
from harness.run.train import TRAINER, matched_data, matched_extra, synthesis_backend_name, training_settings
from harness.serving.models import merge_once, resolve_model
from harness.synthesis.backends import backend_settings, role_backends
from infra.journal import iter_jsonl
from selflengthen.baselines import (BacktranslationConfig, ImitationConfig, build_backtranslation_data,
                                    build_imitation_data, finished_data_result, train_baseline, trained_stats,
                                    why_no_samples)
from selflengthen.length_demand import length_demand_share
from selflengthen.pipeline import INITIAL_ANSWERS

BASELINE_TRAIN_CODE = ("selflengthen.baselines.fine_tune", "selflengthen.merge", "selflengthen.sft_data")
"""The modules a baseline's training stage runs (its data stage runs `selflengthen.baselines.<arm>`)."""


def arm_settings(config: ExperimentConfig, arm: str) -> BacktranslationConfig | ImitationConfig:
    """A baseline's section with the experiment's seed added."""
    settings = getattr(config, arm)
    return dataclasses.replace(settings, seed=settings.seed + config.seed)


def imitation_instructions(config: ExperimentConfig) -> Path:
    """The instructions Self-Lengthen's Generator answered in iteration 1 (the seeds too with include_seeds):
    the imitation teacher answers the same ones, so both arms learn from answers to one instruction set."""
    return Path(config.out_dir) / "train" / "self_lengthen" / "iter_1" / f"{INITIAL_ANSWERS}.jsonl"


def baseline_stages(config: ExperimentConfig, arm: str, instructions: Stage | None
                    ) -> tuple[list[Stage], PlannedCheckpoint]:
    """`arm`'s data and training stages and the checkpoint they produce; `instructions` is the stage writing
    the imitation teacher's instructions (Self-Lengthen's first synthesis), if it runs."""
    settings, work = arm_settings(config, arm), Path(config.out_dir) / "train" / arm
    section = settings_of(dataclasses.asdict(settings), drop=("train", "seed", "corpus", "instructions_file",
                                                              "seed_files"))
    inputs = {"kind": f"{arm}_data", "model": config.model, "settings": section, "seed": settings.seed,
              "backend": settings_of(backend_settings(config.backend)),
              "version": code_version(f"selflengthen.baselines.{arm}")}
    upstream = []
    if arm == "backtranslation":
        inputs["corpus"] = file_digest(settings.corpus) if settings.corpus else None
    if arm == "imitation":
        inputs["seed_files"] = {lang: file_digest(path) for lang, path in sorted(settings.seed_files.items())}
        if settings.instructions_file:
            inputs["instructions"] = file_digest(settings.instructions_file)
        else:
            upstream = [instructions]
    data = Stage(f"{arm}/data", f"{arm}_data", config.model, synthesis_backend_name(config.backend),
                 settings.max_in_flight, dataclasses.asdict(settings.sampling), work, work / "stage.json", inputs,
                 [work], upstream=upstream, run=functools.partial(_build_data, config, arm, settings, work))
    adapter = work / "adapter"
    train = Stage(f"{arm}/train", "train", config.model, TRAINER, None, None, adapter, adapter / "stage.json",
                  {"kind": "train", "model": config.model, "settings": training_settings(settings.train),
                   "version": code_version(*BASELINE_TRAIN_CODE), **config.matched_budget.stage_inputs()},
                  [adapter, work / "merged"], extra=matched_extra(config.matched_budget), upstream=[data],
                  run=functools.partial(_train, config, arm, settings, work),
                  skip=functools.partial(_no_samples, work, arm))
    checkpoint = PlannedCheckpoint(arm, str(work / "merged"), arm, None, train,
                                   functools.partial(_trained_stats, config, arm, settings, work))
    return [data, train], checkpoint


def _build_data(config: ExperimentConfig, arm: str, settings: BacktranslationConfig | ImitationConfig, work: Path,
                stages: list[Stage], console: Console) -> None:
    """The arm's training data, written by the base model (a data run that finished before is kept)."""
    if finished_data_result(work) is not None:
        return
    instructions = imitation_instructions(config)
    if (arm == "imitation" and settings.instructions_file is None and config.arms.self_lengthen
            and _has_instructions(instructions)):
        settings = dataclasses.replace(settings, instructions_file=str(instructions))
    build = build_backtranslation_data if arm == "backtranslation" else build_imitation_data
    with console.status(f"{arm}: building training data"), _base_backend(config, work, settings.max_in_flight) as model:
        asyncio.run(build(model, settings, work))


def _no_samples(work: Path, arm: str) -> tuple[str, str] | None:
    """Why the arm cannot be fine-tuned: its data run kept no sample."""
    data = finished_data_result(work)
    why = why_no_samples(data) if data is not None else f"its data run did not finish ({work})"
    return why and (arm, why)


def _train(config: ExperimentConfig, arm: str, settings: BacktranslationConfig | ImitationConfig, work: Path,
           stages: list[Stage], console: Console) -> None:
    """Fine-tune the base on the arm's data (its matched subsample when budgets are matched) and merge it."""
    base = resolve_model(config.model)
    data_file, _ = matched_data(finished_data_result(work).data_file, config.matched_budget, settings.seed, arm)
    with console.status(f"{arm}: fine-tuning"):
        train_baseline(work, base, settings.train, data_file=data_file)
    merge_once(base, work / "adapter", work / "merged")


def _trained_stats(config: ExperimentConfig, arm: str, settings: BacktranslationConfig | ImitationConfig,
                   work: Path) -> dict:
    """The fine-tuned arm's facts as the leaderboard shows them: what it was trained on (the data run's samples,
    or their matched subsample), the share of length demands among them, and whether the budget was matched."""
    stats = trained_stats(work)
    data_file, matched = matched_data(finished_data_result(work).data_file, config.matched_budget, settings.seed, arm)
    training = stats["training"]
    return {**stats, "samples": training["samples"], "answer_words_mean": training["answer_words_mean"],
            "length_demands": length_demand_share(data_file), "matched_budget": matched}


@contextlib.contextmanager
def _base_backend(config: ExperimentConfig, work: Path, max_in_flight: int) -> Iterator:
    base = resolve_model(config.model)
    with role_backends(base, {"generator": None, "extender": None}, config.backend, work, max_in_flight) as (model, _):
        yield model


def _has_instructions(path: Path) -> bool:
    return path.is_file() and any(record.get("instruction") for _, record in iter_jsonl(path, UserError))
