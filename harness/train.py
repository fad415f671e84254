"""`selflengthen train CONFIG`: K Self-Lengthen iterations from a base model.

Per iteration k: synthesise (self-instruct -> generate -> extend, streamed) with the Generator
and Extender of iteration k-1 (the base model for k = 1), fine-tune a LoRA adapter per role that
continues the previous one, merge the Generator into a servable checkpoint and register it as
`iter_k/generator`. Every step leaves its outputs on disk and is skipped when they are already
there, so re-running the same command after a crash continues where it stopped.

Synthesis backend: on CPU an in-process batched model, because it honours each request's
sampling, repetition penalty and stop strings, which `transformers serve --continuous-batching`
does not (it fixes sampling from the first request, drops the penalty, ignores stops); whole
synthesis runs measured at the same speed as the reference's client on that server
(benchmarks/RESULTS.md). On GPU a vLLM server with both adapters by name; or one
`transformers serve` per role serving merged checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.client import endpoint_target, refuse_unsupported
from harness.errors import UserError
from harness.synthesis_backends import ROLES, SynthesisBackendConfig, merge_once, role_backends
from harness.models import DEFAULT_MODEL, resolve_model
from infra.journal import write_json_atomically as write_json
from selflengthen.config import SelfLengthenConfig
from selflengthen.final_data import build_final_data
from selflengthen.pipeline import EXTENDER_DATA, GENERATOR_DATA, RESULT_FILE, run_synthesis
from selflengthen.lora import train_role

CHECKPOINTS_FILE = "checkpoints.json"
FINAL_DATA = "final_data.jsonl"


@dataclass
class TrainRunConfig:
    """`selflengthen train`: the base model, the synthesis backend and the method's settings.

    Fields:
        model: base model (Hub id, local path or smollm2-135m).
        backend: synthesis backend.
        method: the Self-Lengthen settings (iterations, sizes, sampling, filters, LoRA...).
    """

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Base model."})
    backend: SynthesisBackendConfig = field(default_factory=SynthesisBackendConfig, metadata={"help": "Synthesis."})
    method: SelfLengthenConfig = field(default_factory=SelfLengthenConfig, metadata={"help": "Self-Lengthen."})


@dataclass
class Checkpoint:
    """A model the harness can score: a servable folder plus where it came from."""

    name: str
    path: str
    iteration: int
    adapter: str
    train_stats: dict


@dataclass
class TrainingOutcome:
    """What `run_training` produced: one checkpoint per finished iteration, and why it stopped early (or None)."""

    checkpoints: list[Checkpoint]
    stop_reason: str | None = None


class StageTracker(Protocol):
    """Told when each stage starts and finishes (the experiment records fingerprints through it)."""

    def stage(self, name: str) -> contextlib.AbstractContextManager: ...


def synthesis_stage(k: int) -> str:
    return f"self_lengthen/iter_{k}/synthesis"


def train_stage(k: int, role: str) -> str:
    return f"self_lengthen/iter_{k}/train_{role}"


def validate_training(config: TrainRunConfig, method_label: str = "method") -> None:
    """Refuse, naming the field, what the synthesis backend cannot honour, before any work starts."""
    if config.backend.max_batch_size < 1:
        raise UserError(f"backend.max_batch_size must be at least 1, got {config.backend.max_batch_size}")
    if config.backend.kind == "endpoint":
        target = endpoint_target(config.backend.server.kind, config.backend.server.continuous_batching)
        refuse_unsupported(config.method.sampling, target, f"{method_label}.sampling")


def run_training(config: TrainRunConfig, console: Console | None = None,
                 tracker: StageTracker | None = None) -> TrainingOutcome:
    """Run (or resume) every iteration; an iteration that kept no training pair stops the loop, with the reason."""
    console = console or Console(stderr=True)
    validate_training(config)
    stage = tracker.stage if tracker else (lambda name: contextlib.nullcontext())
    base = resolve_model(config.model)
    method = config.method
    work = Path(method.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    adapters: dict[str, Path | None] = {role: None for role in ROLES}
    checkpoints: list[Checkpoint] = []
    iteration_dirs: list[Path] = []
    for k in range(1, method.iterations + 1):
        it_dir = work / f"iter_{k}"
        iteration_dirs.append(it_dir)
        with stage(synthesis_stage(k)):
            if not (it_dir / RESULT_FILE).is_file():
                synthesise(base, adapters, config, it_dir, dataclasses.replace(method, seed=method.seed + k), console, k)
        console.print(escape(f"iteration {k}: synthesis {_summary(it_dir)}"))
        missing = next((reason for role, data in (("generator", GENERATOR_DATA), ("extender", EXTENDER_DATA))
                        if (reason := _no_rows(it_dir / data, role, k))), None)
        if missing:
            return TrainingOutcome(checkpoints, missing)
        for role, data in (("generator", GENERATOR_DATA), ("extender", EXTENDER_DATA)):
            with stage(train_stage(k, role)), console.status(f"iteration {k}: fine-tuning the {role}"):
                adapters[role] = train_role(it_dir / data, base, it_dir / f"{role}_adapter", method.train, adapters[role])
                if role == "generator":
                    merged = merge_once(base, adapters["generator"], it_dir / "generator_merged")
        stats = json.loads((adapters["generator"] / "train_stats.json").read_text(encoding="utf-8"))
        checkpoints.append(Checkpoint(f"iter_{k}/generator", str(merged), k, str(adapters["generator"]), stats))
        write_json(work / CHECKPOINTS_FILE, [dataclasses.asdict(c) for c in checkpoints])
    count = build_final_data(iteration_dirs, work / FINAL_DATA, method.seed, method.final_data)
    console.print(escape(f"final length-following data: {count} examples in {work / FINAL_DATA}"))
    return TrainingOutcome(checkpoints)


def synthesise(base: str, adapters: dict, config: TrainRunConfig, it_dir: Path, method: SelfLengthenConfig,
               console: Console, k: int) -> None:
    """One iteration's synthesis with the previous iteration's roles, with a progress display."""
    columns = (TextColumn("[bold]iteration %d[/] {task.description}" % k), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bars = {step: progress.add_task(step.replace("_", " "), total=None)
                for step in ("instructions", "initial_answers", "extended_answers")}
        with role_backends(base, adapters, config.backend, it_dir, method.max_in_flight) as (generator, extender):
            asyncio.run(run_synthesis(generator, extender, method, it_dir, lambda step: progress.advance(bars[step])))


def _no_rows(path: Path, role: str, k: int) -> str | None:
    """Why iteration k cannot train `role` (its data file holds no pair), or None."""
    rows = sum(1 for line in path.open(encoding="utf-8") if line.strip()) if path.is_file() else 0
    if rows:
        return None
    return (f"iteration {k} kept no {role} training pairs ({path}); see {path.parent / RESULT_FILE} for the "
            "rejection counts, then raise the sizes or relax the filters")


def _summary(it_dir: Path) -> str:
    result = json.loads((it_dir / RESULT_FILE).read_text(encoding="utf-8"))
    keys = ("instructions", "initial_answers", "extended_answers", "generator_examples", "extender_examples")
    return ", ".join(f"{k}={result.get(k)}" for k in keys)
