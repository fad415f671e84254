"""`selflengthen train CONFIG`: K Self-Lengthen iterations from a base model.

Per iteration k: synthesise (self-instruct -> generate -> extend, streamed) with the Generator
and Extender of iteration k-1 (the base model for k = 1), fine-tune a LoRA adapter per role that
continues the previous one, merge the Generator into a servable checkpoint and register it as
`iter_k/generator`. After the last iteration, as the reference does, build the length-following
data (every iteration's long answers, each instruction given a length demand the answer satisfies,
selflengthen/final_data.py) and fine-tune the base on it (LoRA, `method.train`'s settings): the
`final` checkpoint, the paper's headline model.

The stages (`training_stages`) carry fingerprints (harness/run/stages.py), the same ones `run --plan`
shows: a finished stage is skipped, one whose settings or inputs changed is stale and redone with
everything downstream of it, so re-running the same command continues where it stopped and redoes
what a config change touched.

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
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.config import precision_setting
from harness.errors import UserError
from harness.run.stages import (PlannedCheckpoint, Stage, code_version, file_digest, redo_stale, settings_of,
                                upstream_fingerprint)
from harness.serving.client import endpoint_target, refuse_unsupported
from harness.serving.models import DEFAULT_MODEL, merge_once, resolve_model
from harness.serving.serve import server_label
from harness.synthesis.backends import ROLES, SynthesisBackendConfig, backend_settings, role_backends
from infra.compute import use_bf16
from infra.journal import read_jsonl, write_jsonl_atomically
from infra.journal import write_json_atomically as write_json
from infra.rng import item_rng
from infra.sampling import SamplingConfig
from selflengthen.config import SelfLengthenConfig
from selflengthen.final_data import build_final_data
from selflengthen.length_demand import length_demand_share
from selflengthen.lora import TrainConfig, train_role
from selflengthen.pipeline import EXTENDER_DATA, GENERATOR_DATA, RESULT_FILE, run_synthesis
from selflengthen.sft_data import subsample

CHECKPOINTS_FILE = "checkpoints.json"
FINAL_DIR = "final"
FINAL_DATA = "final_data.jsonl"
FINAL_ARM = "self_lengthen/final"
FINAL_DATA_STAGE = "self_lengthen/final/data"
FINAL_TRAIN_STAGE = "self_lengthen/final/train"
TRAINER = "trl (LoRA)"
MATCHED_DATA = ".matched.jsonl"
"""Suffix of the subsample an arm trains on with matched budgets, written beside its data file."""


@dataclass
class MatchedBudgetConfig:
    """Matched training budgets (off by default): every scored arm fine-tunes on the same number of examples.

    Arms trained on budgets 40 times apart (issue #38) compare data volumes as much as methods. Fields: examples.
    """

    examples: int | None = field(
        default=None,
        metadata={"help": "Fine-tune every scored arm (the iterations' Generators, the final model, both baselines) on "
                  "a subsample of this many of its examples, drawn with the arm's seed; an arm that has fewer trains "
                  "on all it has, and its training table says so. A matched Generator changes the next iteration's "
                  "synthesis; the Extender, no scored arm, trains on all its data. null: off, every arm on all its data."},
    )

    def __post_init__(self) -> None:
        if self.examples is not None and self.examples < 1:
            raise ValueError(f"examples must be at least 1 or null, got {self.examples}")

    def stage_inputs(self) -> dict:
        """What a matched arm's training stage adds to its fingerprint (nothing when off, so a run from before the
        setting existed stays done)."""
        return {} if self.examples is None else {"matched_budget": {"examples": self.examples}}

    def plan_text(self) -> str:
        return "off" if self.examples is None else f"examples: {self.examples} per arm, seeded subsample"


@dataclass
class TrainRunConfig:
    """`selflengthen train`: the base model, the synthesis backend and the method's settings.

    Fields:
        model: base model (Hub id, local path or smollm2-135m).
        backend: synthesis backend.
        method: the Self-Lengthen settings (iterations, sizes, sampling, filters, LoRA...).
        matched_budget: train the Generators and the final model on the same number of examples.
    """

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Base model."})
    backend: SynthesisBackendConfig = field(default_factory=SynthesisBackendConfig, metadata={"help": "Synthesis."})
    method: SelfLengthenConfig = field(default_factory=SelfLengthenConfig, metadata={"help": "Self-Lengthen."})
    matched_budget: MatchedBudgetConfig = field(default_factory=MatchedBudgetConfig,
                                                metadata={"help": "Matched training budgets (off by default)."})


@dataclass
class Checkpoint:
    """A model the harness can score: a servable folder plus where it came from."""

    name: str
    path: str
    iteration: int | None
    """None for the final model."""
    adapter: str
    train_stats: dict


@dataclass
class TrainingOutcome:
    """What `run_training` produced: one checkpoint per finished iteration and the final model, why the
    iterations stopped early (or None), and why there is no final model (or None)."""

    checkpoints: list[Checkpoint]
    stop_reason: str | None = None
    final_skipped: str | None = None


class StageTracker(Protocol):
    """Told when each stage starts and finishes (the experiment records fingerprints through it)."""

    def stage(self, name: str) -> contextlib.AbstractContextManager: ...


def synthesis_stage(k: int) -> str:
    return f"self_lengthen/iter_{k}/synthesis"


def train_stage(k: int, role: str) -> str:
    return f"self_lengthen/iter_{k}/train_{role}"


SYNTHESIS_CODE = ("selflengthen.pipeline",)
TRAIN_CODE = ("selflengthen.lora", "selflengthen.merge", "selflengthen.sft_data")
FINAL_DATA_CODE = ("selflengthen.final_data",)
"""The modules each kind of Self-Lengthen stage runs: its fingerprint follows them and what they import."""


def iteration_seed(method: SelfLengthenConfig, k: int) -> int:
    """The seed of iteration k's synthesis (each iteration draws its own items)."""
    return method.seed + k


def checkpoint_arm(iteration: int | None) -> str:
    """The leaderboard arm of a Self-Lengthen checkpoint: the iterations' Generators, or the final model."""
    return "self_lengthen" if iteration is not None else FINAL_ARM


def synthesis_backend_name(backend: SynthesisBackendConfig) -> str:
    if backend.kind == "ray":
        workers = ("actor" if backend.ray.engine == "inprocess" else "vLLM replica") + \
            ("s" if backend.ray.concurrency != 1 else "")
        return f"ray ({backend.ray.engine}, {backend.ray.concurrency} {workers})"
    return "inprocess" if backend.kind == "inprocess" else server_label(backend.server)


def training_stages(config: TrainRunConfig) -> tuple[list[Stage], list[PlannedCheckpoint]]:
    """The method's stages in execution order (each iteration's synthesis and role training, then the final
    data and model) and the checkpoints they produce, named as `run` scores them."""
    method, work = config.method, Path(config.method.work_dir)
    synthesis_code, train_code = code_version(*SYNTHESIS_CODE), code_version(*TRAIN_CODE)
    settings = settings_of(dataclasses.asdict(method),
                           drop=("iterations", "work_dir", "train", "final_data", "seed", "seed_files"))
    seed_files = {lang: file_digest(path) if path else None for lang, path in _seed_paths(method).items()}
    train = training_settings(method.train)
    previous: dict[str, Stage | None] = {role: None for role in ROLES}
    stages, syntheses, checkpoints = [], [], []
    for k in range(1, method.iterations + 1):
        it_dir = work / f"iter_{k}"
        inputs = {"kind": "synthesis", "model": config.model, "settings": settings, "seed_files": seed_files,
                  "seed": iteration_seed(method, k), "backend": settings_of(backend_settings(config.backend)),
                  "upstream": [upstream_fingerprint(previous[role]) for role in ROLES], "version": synthesis_code}
        synthesis = Stage(synthesis_stage(k), "synthesis", config.model if k == 1 else
                          f"{config.model} + iter_{k - 1} adapters", synthesis_backend_name(config.backend),
                          method.max_in_flight, dataclasses.asdict(method.sampling), it_dir, it_dir / "stage.json",
                          inputs, [it_dir], extra={"roles": {role: {"concurrency": method.max_in_flight}
                                                         for role in ROLES}})
        stages.append(synthesis)
        syntheses.append(synthesis.fingerprint)
        for role in ROLES:
            adapter = it_dir / f"{role}_adapter"
            scored = role == "generator"
            inputs = {"kind": "train", "role": role, "model": config.model, "settings": train,
                      "upstream": [synthesis.fingerprint, upstream_fingerprint(previous[role])], "version": train_code,
                      **(config.matched_budget.stage_inputs() if scored else {})}
            previous[role] = Stage(train_stage(k, role), "train", config.model, TRAINER, None, None, adapter,
                                   adapter / "stage.json", inputs,
                                   [adapter] + ([it_dir / "generator_merged"] if scored else []),
                                   extra=matched_extra(config.matched_budget) if scored else {})
            stages.append(previous[role])
        checkpoints.append(PlannedCheckpoint(f"self_lengthen/iter_{k}/generator", str(it_dir / "generator_merged"),
                                             checkpoint_arm(k), k, previous["generator"]))
    final = work / FINAL_DIR
    data = Stage(FINAL_DATA_STAGE, "final_data", "-", None, None, None, final, final / "stage.json",
                 {"kind": "final_data", "settings": settings_of(dataclasses.asdict(method.final_data)),
                  "seed": method.seed, "upstream": syntheses, "version": code_version(*FINAL_DATA_CODE)},
                 [final / FINAL_DATA])
    adapter = final / "adapter"
    model = Stage(FINAL_TRAIN_STAGE, "train", config.model, TRAINER, None, None, adapter, adapter / "stage.json",
                  {"kind": "train", "role": "final", "model": config.model, "settings": train,
                   "upstream": [data.fingerprint], "version": train_code, **config.matched_budget.stage_inputs()},
                  [adapter, final / "merged"], extra=matched_extra(config.matched_budget))
    checkpoints.append(PlannedCheckpoint(FINAL_ARM, str(final / "merged"), FINAL_ARM, None, model))
    return stages + [data, model], checkpoints


def matched_extra(budget: MatchedBudgetConfig) -> dict:
    """What `--plan` shows of a scored arm's training stage: whether and how its budget is matched."""
    return {"matched_budget": budget.plan_text()}


def matched_data(data: Path, budget: MatchedBudgetConfig, seed: int, arm: str) -> tuple[Path, str]:
    """The file `arm` trains on, and what its training table says of it: `data` itself when budgets are not
    matched, else a subsample of `budget.examples` of its rows (drawn with `seed` and the arm's name) beside it."""
    if budget.examples is None:
        return data, "off"
    rows = read_jsonl(data)
    path = data.with_name(data.name.removesuffix(".jsonl") + MATCHED_DATA)
    write_jsonl_atomically(path, subsample(rows, budget.examples, item_rng(seed, f"matched_budget/{arm}")))
    if len(rows) > budget.examples:
        return path, f"examples: {budget.examples}, seeded subsample of {len(rows)}"
    if len(rows) < budget.examples:
        return path, f"examples: {len(rows)}, all the arm has (fewer than the {budget.examples} matched)"
    return path, f"examples: {budget.examples}, all the arm has"


def training_settings(train: TrainConfig) -> dict:
    """A training stage's settings as its fingerprint holds them, `precision` as it resolves here: an adapter
    trained in bf16 is not the one fp32 trains, so a run moved to a machine where `auto` means the other
    precision retrains it instead of reusing it."""
    return {**settings_of(dataclasses.asdict(train)), "precision": resolved_precision(train.precision)}


def resolved_precision(precision: str) -> str:
    """'bf16' or 'fp32': what a training process started from here computes in (`infra.compute.use_bf16`)."""
    if precision != "auto":
        return precision
    return precision_setting() or _native_precision()


@functools.cache
def _native_precision() -> str:
    """What `auto` means on this machine's GPU or CPU (torch is asked once per process)."""
    return "bf16" if use_bf16("auto") else "fp32"


def validate_training(config: TrainRunConfig, method_label: str = "method") -> None:
    """Refuse, naming the field, what the synthesis backend cannot honour, before any work starts."""
    precision_setting()
    if config.backend.kind == "endpoint":
        target = endpoint_target(config.backend.server.kind, config.backend.server.continuous_batching)
        refuse_unsupported(config.method.sampling, target, f"{method_label}.sampling")
        if config.method.self_instruct.constrained_judge:
            refuse_unsupported(SamplingConfig(json_schema={"type": "string"}), target,
                               f"{method_label}.self_instruct.constrained_judge")


def require_backend_packages(backend: SynthesisBackendConfig) -> None:
    """`backend.kind: ray` needs optional packages: said before a run starts (a plan needs none of them)."""
    import importlib.util

    if backend.kind != "ray":
        return
    if importlib.util.find_spec("ray") is None:
        raise UserError("backend.kind: ray needs Ray Data: pip install -e '.[ray]'")
    if backend.ray.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise UserError("backend.ray.engine: vllm needs Ray Data LLM and vLLM: pip install -e '.[ray-gpu]'")


def run_training(config: TrainRunConfig, console: Console | None = None,
                 tracker: StageTracker | None = None) -> TrainingOutcome:
    """Run (or resume) every iteration, then the final model; an iteration that kept no training pair stops the
    loop, with the reason. Without a `tracker`, stale stages are cleared and redone here (`selflengthen train`)."""
    console = console or Console(stderr=True)
    validate_training(config)
    stage = (tracker or redo_stale(training_stages(config)[0], console)).stage
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
                synthesise(base, adapters, config, it_dir, dataclasses.replace(method, seed=iteration_seed(method, k)),
                           console, k)
        console.print(escape(f"iteration {k}: synthesis {_summary(it_dir)}"))
        missing = next((reason for role, data in (("generator", GENERATOR_DATA), ("extender", EXTENDER_DATA))
                        if (reason := _no_rows(it_dir / data, role, k))), None)
        if missing:
            return TrainingOutcome(checkpoints, missing, final_skipped="the iterations stopped before the last one")
        generator_data, matched = matched_data(it_dir / GENERATOR_DATA, config.matched_budget, method.seed,
                                               f"self_lengthen/iter_{k}/generator")
        for role, data in (("generator", generator_data), ("extender", it_dir / EXTENDER_DATA)):
            with stage(train_stage(k, role)), console.status(f"iteration {k}: fine-tuning the {role}"):
                adapters[role] = train_role(data, base, it_dir / f"{role}_adapter", method.train, adapters[role])
                if role == "generator":
                    merged = merge_once(base, adapters["generator"], it_dir / "generator_merged")
        stats = _train_stats(adapters["generator"], generator_data, matched)
        checkpoints.append(Checkpoint(f"iter_{k}/generator", str(merged), k, str(adapters["generator"]), stats))
        write_json(work / CHECKPOINTS_FILE, [dataclasses.asdict(c) for c in checkpoints])
    final, why_not = train_final(base, iteration_dirs, work / FINAL_DIR, method, console, stage,
                                 config.matched_budget)
    if final is not None:
        checkpoints.append(final)
        write_json(work / CHECKPOINTS_FILE, [dataclasses.asdict(c) for c in checkpoints])
    return TrainingOutcome(checkpoints, final_skipped=why_not)


def train_final(base: str, iteration_dirs: list[Path], final: Path, method: SelfLengthenConfig, console: Console,
                stage: Callable[[str], contextlib.AbstractContextManager], budget: MatchedBudgetConfig
                ) -> tuple[Checkpoint | None, str | None]:
    """The paper's last step: the length-following data from every iteration, and the base fine-tuned on it
    (LoRA with `method.train`'s settings, on `budget`'s subsample when budgets are matched): the checkpoint, or why
    there is none."""
    data = final / FINAL_DATA
    with stage(FINAL_DATA_STAGE):
        if not data.is_file():
            build_final_data(iteration_dirs, data, method.seed, method.final_data)
    count = sum(1 for line in data.open(encoding="utf-8") if line.strip())
    console.print(escape(f"final length-following data: {count} examples in {data}"))
    if not count:
        window = method.final_data
        return None, (f"no answer of {window.min_words} to {window.max_words} words for the final data ({data}); "
                      "lower self_lengthen.final_data.min_words or lengthen the answers")
    trained, matched = matched_data(data, budget, method.seed, FINAL_ARM)
    with stage(FINAL_TRAIN_STAGE), console.status("fine-tuning the final model on the length-following data"):
        adapter = train_role(trained, base, final / "adapter", method.train)
        merged = merge_once(base, adapter, final / "merged")
    return Checkpoint("final", str(merged), None, str(adapter), _train_stats(adapter, trained, matched)), None


def _train_stats(adapter: Path, data: Path, matched: str) -> dict:
    """The adapter's training facts, the share of its training instructions that carry a length demand, and
    whether its budget was matched."""
    stats = json.loads((adapter / "train_stats.json").read_text(encoding="utf-8"))
    return {**stats, "length_demands": length_demand_share(data), "matched_budget": matched}


def _seed_paths(method: SelfLengthenConfig) -> dict[str, Path | None]:
    """The seed instruction file each language reads (None where none is configured: synthesis will say so)."""
    paths = {}
    for lang in method.languages:
        try:
            paths[lang] = method.seed_file(lang)
        except ValueError:
            paths[lang] = None
    return paths


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
