"""`selflengthen train CONFIG`: K Self-Lengthen iterations from a base model.

Per iteration k: synthesise (self-instruct -> generate -> extend, streamed) with the Generator
and Extender of iteration k-1 (the base model for k = 1), fine-tune a LoRA adapter per role that
continues the previous one, merge the Generator into a servable checkpoint and register it as
`iter_k/generator`. After the last iteration, as the reference does, build the length-following
data (every iteration's long answers, each instruction given a length demand the answer satisfies,
selflengthen/final_data.py) and fine-tune the base on it (LoRA, `method.train`'s settings): the
`final` checkpoint, the paper's headline model.

The stages (`training_stages`), each with its fingerprint (harness/run/stages.py) and what runs it, are
the ones `run` plans and executes; `train` executes them alone: a finished stage is skipped, one whose
settings or inputs changed is stale and redone with everything downstream of it, so re-running the same
command continues where it stopped and redoes what a config change touched.

Synthesis backend: on CPU an in-process batched model, because it honours each request's
sampling, repetition penalty and stop strings, which `transformers serve --continuous-batching`
does not (it fixes sampling from the first request, drops the penalty, ignores stops); whole
synthesis runs measured at the same speed as the reference's client on that server
(benchmarks/RESULTS.md). On GPU a vLLM server with both adapters by name; or one
`transformers serve` per role serving merged checkpoints.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.config import precision_setting
from harness.errors import UserError
from harness.run.execute import execute
from harness.run.stages import DONE, PlannedCheckpoint, Stage, code_version, file_digest, settings_of
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


SELF_LENGTHEN_ARMS = ("self_lengthen", FINAL_ARM)
"""The leaderboard arms of the method's checkpoints (`checkpoint_arm`)."""


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
    data and model), each with what it runs, and the checkpoints they produce, named as `run` scores them."""
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
        iteration = dataclasses.replace(method, seed=iteration_seed(method, k))
        inputs = {"kind": "synthesis", "model": config.model, "settings": settings, "seed_files": seed_files,
                  "seed": iteration.seed, "backend": settings_of(backend_settings(config.backend)),
                  "version": synthesis_code}
        synthesis = Stage(synthesis_stage(k), "synthesis", config.model if k == 1 else
                          f"{config.model} + iter_{k - 1} adapters", synthesis_backend_name(config.backend),
                          method.max_in_flight, dataclasses.asdict(method.sampling), it_dir, it_dir / "stage.json",
                          inputs, [it_dir], extra={"roles": {role: {"concurrency": method.max_in_flight}
                                                         for role in ROLES}},
                          upstream=[previous[role] for role in ROLES],
                          run=functools.partial(_synthesise_iteration, config, iteration, k))
        stages.append(synthesis)
        syntheses.append(synthesis)
        for role in ROLES:
            adapter = it_dir / f"{role}_adapter"
            scored = role == "generator"
            inputs = {"kind": "train", "role": role, "model": config.model, "settings": train, "version": train_code,
                      **(config.matched_budget.stage_inputs() if scored else {})}
            previous[role] = Stage(train_stage(k, role), "train", config.model, TRAINER, None, None, adapter,
                                   adapter / "stage.json", inputs,
                                   [adapter] + ([it_dir / "generator_merged"] if scored else []),
                                   extra=matched_extra(config.matched_budget) if scored else {},
                                   upstream=[synthesis, previous[role]],
                                   run=functools.partial(_train_iteration_role, config, k, role),
                                   skip=functools.partial(_iteration_stopped, it_dir, k))
            stages.append(previous[role])
        checkpoints.append(PlannedCheckpoint(
            f"self_lengthen/iter_{k}/generator", str(it_dir / "generator_merged"), checkpoint_arm(k), k,
            previous["generator"], functools.partial(_trained_stats, config, it_dir / "generator_adapter",
                                                     it_dir / GENERATOR_DATA, f"self_lengthen/iter_{k}/generator")))
    final = work / FINAL_DIR
    data = Stage(FINAL_DATA_STAGE, "final_data", "-", None, None, None, final, final / "stage.json",
                 {"kind": "final_data", "settings": settings_of(dataclasses.asdict(method.final_data)),
                  "seed": method.seed, "version": code_version(*FINAL_DATA_CODE)},
                 [final / FINAL_DATA], upstream=syntheses, run=functools.partial(_build_final_data, config),
                 skip=functools.partial(_iterations_stopped, config))
    adapter = final / "adapter"
    model = Stage(FINAL_TRAIN_STAGE, "train", config.model, TRAINER, None, None, adapter, adapter / "stage.json",
                  {"kind": "train", "role": "final", "model": config.model, "settings": train, "version": train_code,
                   **config.matched_budget.stage_inputs()},
                  [adapter, final / "merged"], extra=matched_extra(config.matched_budget), upstream=[data],
                  run=functools.partial(_train_final, config), skip=functools.partial(_no_final_data, config))
    checkpoints.append(PlannedCheckpoint(FINAL_ARM, str(final / "merged"), FINAL_ARM, None, model,
                                         functools.partial(_trained_stats, config, adapter, final / FINAL_DATA,
                                                           FINAL_ARM)))
    return stages + [data, model], checkpoints


def _synthesise_iteration(config: TrainRunConfig, iteration: SelfLengthenConfig, k: int, stages: list[Stage],
                          console: Console) -> None:
    """Iteration k's synthesis with the Generator and Extender of iteration k-1 (the base model for k = 1)."""
    work = Path(config.method.work_dir)
    it_dir = work / f"iter_{k}"
    adapters = {role: None if k == 1 else work / f"iter_{k - 1}" / f"{role}_adapter" for role in ROLES}
    if not (it_dir / RESULT_FILE).is_file():
        synthesise(resolve_model(config.model), adapters, config, it_dir, iteration, console, k)
    console.print(escape(f"iteration {k}: synthesis {_summary(it_dir)}"))


def _train_iteration_role(config: TrainRunConfig, k: int, role: str, stages: list[Stage], console: Console) -> None:
    """Fine-tune iteration k's `role` adapter, continuing iteration k-1's; the Generator is merged to be scored."""
    work = Path(config.method.work_dir)
    it_dir, base = work / f"iter_{k}", resolve_model(config.model)
    data = (_matched_generator_data(config, it_dir, f"self_lengthen/iter_{k}/generator")[0] if role == "generator"
            else it_dir / EXTENDER_DATA)
    with console.status(f"iteration {k}: fine-tuning the {role}"):
        adapter = train_role(data, base, it_dir / f"{role}_adapter", config.method.train,
                             work / f"iter_{k - 1}" / f"{role}_adapter" if k > 1 else None)
        if role == "generator":
            merge_once(base, adapter, it_dir / "generator_merged")


def _iteration_stopped(it_dir: Path, k: int) -> tuple[str, str] | None:
    """Why iteration k cannot train its roles (a data file without a pair): the iterations stop there."""
    reason = next((why for role, data in (("generator", GENERATOR_DATA), ("extender", EXTENDER_DATA))
                   if (why := _no_rows(it_dir / data, role, k))), None)
    return reason and ("self_lengthen", f"stopped after {k - 1} iteration(s): {reason}")


def _iterations_stopped(config: TrainRunConfig) -> tuple[str, str] | None:
    """The final data is built from every iteration: none when one stopped before training."""
    work = Path(config.method.work_dir)
    if any(_iteration_stopped(work / f"iter_{k}", k) for k in range(1, config.method.iterations + 1)):
        return FINAL_ARM, "the iterations stopped before the last one"
    return None


def _build_final_data(config: TrainRunConfig, stages: list[Stage], console: Console) -> None:
    """The length-following data from every iteration's long answers (selflengthen/final_data.py)."""
    work, method = Path(config.method.work_dir), config.method
    data = work / FINAL_DIR / FINAL_DATA
    if not data.is_file():
        build_final_data([work / f"iter_{k}" for k in range(1, method.iterations + 1)], data, method.seed,
                         method.final_data)
    console.print(escape(f"final length-following data: {_rows(data)} examples in {data}"))


def _no_final_data(config: TrainRunConfig) -> tuple[str, str] | None:
    """Why there is no final model: the length-following data holds no example."""
    data, window = Path(config.method.work_dir) / FINAL_DIR / FINAL_DATA, config.method.final_data
    if _rows(data):
        return None
    return FINAL_ARM, (f"no answer of {window.min_words} to {window.max_words} words for the final data ({data}); "
                       "lower self_lengthen.final_data.min_words or lengthen the answers")


def _train_final(config: TrainRunConfig, stages: list[Stage], console: Console) -> None:
    """The paper's last step: the base fine-tuned on the length-following data (LoRA with `method.train`'s
    settings, on the matched subsample when budgets are matched), merged to be scored."""
    final, base = Path(config.method.work_dir) / FINAL_DIR, resolve_model(config.model)
    data, _ = _matched_generator_data(config, final, FINAL_ARM, FINAL_DATA)
    with console.status("fine-tuning the final model on the length-following data"):
        adapter = train_role(data, base, final / "adapter", config.method.train)
        merge_once(base, adapter, final / "merged")


def _matched_generator_data(config: TrainRunConfig, folder: Path, arm: str, name: str = GENERATOR_DATA
                            ) -> tuple[Path, str]:
    return matched_data(folder / name, config.matched_budget, config.method.seed, arm)


def _trained_stats(config: TrainRunConfig, adapter: Path, data: Path, arm: str) -> dict:
    """A scored Self-Lengthen checkpoint's training facts: the adapter's, the share of its training instructions
    that carry a length demand, and whether its budget was matched."""
    trained, matched = _matched_generator_data(config, data.parent, arm, data.name)
    return _train_stats(adapter, trained, matched)


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


def run_training(config: TrainRunConfig, console: Console | None = None) -> TrainingOutcome:
    """Run (or resume) the method's stages: every iteration, then the final model; stale stages are cleared and
    redone first. An iteration that kept no training pair stops the loop, with the reason."""
    console = console or Console(stderr=True)
    validate_training(config)
    stages, planned = training_stages(config)
    skipped = execute(stages, console)
    checkpoints = register_checkpoints(config, planned)
    return TrainingOutcome(checkpoints, skipped.get("self_lengthen"), skipped.get(FINAL_ARM))


def register_checkpoints(config: TrainRunConfig, planned: list[PlannedCheckpoint]) -> list[Checkpoint]:
    """The method's finished checkpoints, written to `work_dir/checkpoints.json` for whoever serves them next."""
    checkpoints = [Checkpoint(c.name.removeprefix("self_lengthen/"), c.path, c.iteration, str(c.producer.output),
                              c.train_stats()) for c in planned if c.producer.status == DONE]
    write_json(Path(config.method.work_dir) / CHECKPOINTS_FILE, [dataclasses.asdict(c) for c in checkpoints])
    return checkpoints


def _train_stats(adapter: Path, data: Path, matched: str) -> dict:
    """The adapter's training facts, the share of its training instructions that carry a length demand, and
    whether its budget was matched."""
    stats = json.loads((adapter / "train_stats.json").read_text(encoding="utf-8"))
    return {**stats, "length_demands": length_demand_share(data), "matched_budget": matched}


def _rows(path: Path) -> int:
    return sum(1 for line in path.open(encoding="utf-8") if line.strip()) if path.is_file() else 0


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
    if _rows(path):
        return None
    return (f"iteration {k} kept no {role} training pairs ({path}); see {path.parent / RESULT_FILE} for the "
            "rejection counts, then raise the sizes or relax the filters")


def _summary(it_dir: Path) -> str:
    result = json.loads((it_dir / RESULT_FILE).read_text(encoding="utf-8"))
    keys = ("instructions", "initial_answers", "extended_answers", "generator_examples", "extender_examples")
    return ", ".join(f"{k}={result.get(k)}" for k in keys)
