"""The experiment's typed config, loaded and validated before any work starts.

Every field is honoured or refused: what `run` sets itself (each checkpoint's model, the tasks,
the limit, the data folder, the work folders) is not a field of the sections it would override,
or is refused with a one-line error naming it. `data_dir` is passed explicitly to every consumer
and fills `${SELFLENGTHEN_DATA_DIR}` in the other fields; the environment is never changed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import expand_variables, from_dict, load_yaml, precision_setting
from harness.errors import UserError
from harness.run.train import MatchedBudgetConfig, TrainRunConfig, validate_training
from harness.scoring.evaluate import EvalConfig, ScoringConfig, validate_eval
from harness.scoring.judging import JudgeRunConfig, check_rubric
from harness.serving.client import endpoint_target, refuse_unsupported
from harness.serving.models import DEFAULT_MODEL, check_model_name
from harness.serving.serve import ServerConfig
from harness.synthesis.backends import SynthesisBackendConfig
from harness.synthesis.ray_stage import RayStageConfig
from selflengthen.baselines import BacktranslationConfig, ImitationConfig
from selflengthen.config import SelfLengthenConfig
from tasks.data import DATA_DIR_ENV

JUDGE_SERVER_KIND = JudgeRunConfig.__dataclass_fields__["server"].default_factory().kind


@dataclass
class ArmsConfig:
    """Which arms to train and score. A disabled arm's own section is not read."""

    base: bool = field(default=True, metadata={"help": "Score the untouched base model (the reference row)."})
    self_lengthen: bool = field(default=True, metadata={"help": "Self-Lengthen iterations 1..K."})
    backtranslation: bool = field(default=True, metadata={"help": "Instruction backtranslation baseline."})
    imitation: bool = field(default=True, metadata={"help": "Behaviour imitation (AgentWrite) baseline."})

    def __post_init__(self) -> None:
        """An experiment with no arm would plan and run nothing and exit 0, as if it had succeeded."""
        if not any(dataclasses.astuple(self)):
            raise ValueError("every arm is switched off; switch on at least one of base, self_lengthen, "
                             "backtranslation, imitation")


@dataclass
class ExperimentConfig:
    """One experiment: a base model, its arms, the tasks, the judge and where it all goes.

    Fields:
        model, out_dir, seed, data_dir: the base model, the output folder, a seed added to every
            arm's, the folder of benchmark/seed/corpus files (else SELFLENGTHEN_DATA_DIR).
        arms: which arms run.
        tasks, limit, eval: what every checkpoint is scored on, and how answers are generated.
        backend: synthesis backend of every trained arm (in-process on CPU, endpoint on GPU).
        self_lengthen, backtranslation, imitation: each arm's own settings.
        judge: the LLM judge (with `repeat`, the reliability pass); judge_enabled: false skips it.
        matched_budget: train every scored arm on the same number of examples (off by default).
    """

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Base model: Hub id, local path or smollm2-135m."})
    out_dir: str = field(default="runs/experiment", metadata={"help": "Where everything is written."})
    seed: int = field(default=0, metadata={"help": "Added to every arm's seed."})
    data_dir: str | None = field(default=None, metadata={"help": "Benchmark/seed/corpus files (else SELFLENGTHEN_DATA_DIR)."})
    arms: ArmsConfig = field(default_factory=ArmsConfig, metadata={"help": "Which arms run."})
    tasks: list[str] = field(default_factory=lambda: ["longbench_write_en_mini", "longen_mini"], metadata={"help": "Tasks."})
    limit: int | None = field(default=None, metadata={"help": "Documents per task at most."})
    eval: ScoringConfig = field(default_factory=ScoringConfig, metadata={"help": "Answer generation."})
    backend: SynthesisBackendConfig = field(default_factory=SynthesisBackendConfig, metadata={"help": "Synthesis backend."})
    self_lengthen: SelfLengthenConfig = field(default_factory=SelfLengthenConfig, metadata={"help": "Self-Lengthen."})
    backtranslation: BacktranslationConfig | None = field(default=None, metadata={"help": "Backtranslation (needs a corpus)."})
    imitation: ImitationConfig = field(default_factory=ImitationConfig, metadata={"help": "Behaviour imitation."})
    judge: JudgeRunConfig = field(default_factory=JudgeRunConfig, metadata={"help": "LLM judge."})
    judge_enabled: bool = field(default=True, metadata={"help": "Judge quality (false: length scores only)."})
    matched_budget: MatchedBudgetConfig = field(default_factory=MatchedBudgetConfig,
                                                metadata={"help": "Matched training budgets (off by default)."})


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Load and validate an experiment YAML; `${SELFLENGTHEN_DATA_DIR}` expands to its `data_dir`."""
    raw = load_yaml(path)
    where = Path(path).name
    arms = raw.get("arms") if isinstance(raw.get("arms"), dict) else {}
    for arm in ("self_lengthen", "backtranslation", "imitation"):
        if arms.get(arm) is False:
            raw.pop(arm, None)  # a disabled arm's section is not read (nor its variables expanded)
    judge = raw.get("judge")
    if isinstance(judge, dict) and isinstance(judge.get("server"), dict):
        # A partial section would otherwise start from ServerConfig's kind (transformers), not the judge's.
        judge["server"] = {"kind": JUDGE_SERVER_KIND, **judge["server"]}
    variables = {}
    if isinstance(raw.get("data_dir"), str):
        raw["data_dir"] = expand_variables(raw["data_dir"], os.environ, f"{where}.data_dir")
        variables[DATA_DIR_ENV] = raw["data_dir"]
    config = from_dict(ExperimentConfig, raw, where=where, variables=variables)
    return resolved(config)


def resolved(config: ExperimentConfig) -> ExperimentConfig:
    """The config with its data folder made explicit (seed files filled in) and every field validated."""
    data_dir = config.data_dir or os.environ.get(DATA_DIR_ENV) or None
    if data_dir and not Path(data_dir).is_dir():
        raise UserError(f"data_dir: data directory not found: {data_dir}")
    config = dataclasses.replace(config, data_dir=str(Path(data_dir).resolve()) if data_dir else None)
    sl = config.self_lengthen
    config = dataclasses.replace(
        config,
        self_lengthen=dataclasses.replace(sl, seed_files=_seed_files(sl.seed_files, sl.languages, config.data_dir)),
        imitation=dataclasses.replace(config.imitation, seed_files=_seed_files(
            config.imitation.seed_files, config.imitation.languages, config.data_dir)),
    )
    validate_experiment(config)
    return config


def validate_experiment(config: ExperimentConfig) -> None:
    """One-line errors naming the field, for everything that would be ignored, overridden or fail later.

    `run` and `run --plan` both come through here first, so a plan refuses what the run would.
    """
    if not config.tasks or any(not t.strip() for t in config.tasks):
        raise UserError(f"tasks must name at least one task, got {config.tasks!r}")
    precision_setting()  # what `precision: auto` means for every model this experiment loads
    check_model_name(config.model, "model")
    if not config.out_dir.strip():
        raise UserError("out_dir must name a folder, got an empty string")
    if Path(config.out_dir).exists() and not Path(config.out_dir).is_dir():
        raise UserError(f"out_dir: {config.out_dir} exists and is not a folder")
    if config.judge_enabled:
        if not config.judge.endpoint:
            check_model_name(config.judge.model, "judge.model")
        check_rubric(config.judge.rubric, "judge.rubric")
    if config.limit is not None and config.limit < 1:
        raise UserError(f"limit must be at least 1 or unset, got {config.limit}")
    validate_eval(eval_config(config, config.model), where="eval")
    _refuse_unused_server_fields(config.eval.server, "eval.server")
    _refuse_unused_backend_fields(config.backend)
    if config.judge_enabled and not config.judge.endpoint:
        _refuse_unused_server_fields(config.judge.server, "judge.server")
    if config.judge_enabled and config.judge.sanity_scope == "base" and not config.arms.base:
        raise UserError("judge.sanity_scope: base needs arms.base (its answers are the ones degraded)")
    if not config.judge.repeat and config.judge.repeat_subset != JudgeRunConfig().repeat_subset:
        raise UserError("judge.repeat_subset is only used with judge.repeat (at least 2); remove it")
    if config.self_lengthen.work_dir != SelfLengthenConfig().work_dir:
        raise UserError("self_lengthen.work_dir is set by run (out_dir/train/self_lengthen); remove it")
    if config.arms.self_lengthen:
        validate_training(TrainRunConfig(model=config.model, backend=config.backend, method=config.self_lengthen),
                          method_label="self_lengthen")
        _require_seed_files("self_lengthen", config.self_lengthen.seed_files, config.self_lengthen.languages)
    if config.arms.backtranslation:
        if config.backtranslation is None:
            raise UserError("backtranslation.corpus: set a corpus (or corpus_hf), or arms.backtranslation: false")
        corpus = config.backtranslation.corpus
        if corpus is not None and not Path(corpus).is_file():
            raise UserError(f"backtranslation.corpus: file not found: {corpus}")
        _refuse_for_backend(config, "backtranslation")
        if config.backtranslation.sampling.max_tokens != BacktranslationConfig.__dataclass_fields__[
                "sampling"].default_factory().max_tokens:
            raise UserError("backtranslation.sampling.max_tokens is not used: instruction_max_tokens and "
                            "rating_max_tokens set each request's length; remove it")
    if config.arms.imitation:
        _refuse_for_backend(config, "imitation")
        if config.imitation.instructions_file is None and not config.arms.self_lengthen:
            _require_seed_files("imitation", config.imitation.seed_files, config.imitation.languages)


def eval_config(config: ExperimentConfig, model: str) -> EvalConfig:
    """The EvalConfig that scores `model`: the experiment's tasks, limit and data, the `eval` section's generation."""
    return EvalConfig(model=model, tasks=list(config.tasks), limit=config.limit, data_dir=config.data_dir,
                      **{f.name: getattr(config.eval, f.name) for f in dataclasses.fields(ScoringConfig)})


def _refuse_for_backend(config: ExperimentConfig, arm: str) -> None:
    if config.backend.kind == "endpoint":
        server = config.backend.server
        refuse_unsupported(getattr(config, arm).sampling, endpoint_target(server.kind, server.continuous_batching),
                           f"{arm}.sampling")


SERVER_FIELD_KINDS = {"continuous_batching": "transformers", "cb_num_blocks": "transformers",
                      "cb_max_batch_tokens": "transformers", "lora_adapters": "vllm", "dtype": "vllm",
                      "data_parallel_size": "vllm", "max_batch_size": "inprocess"}
"""ServerConfig fields that only one server kind reads (`harness.serving.serve.server_command`)."""


def _refuse_unused_server_fields(server: ServerConfig, where: str) -> None:
    """A one-line error for a server field the server's kind would silently ignore."""
    default = ServerConfig()
    for name, kind in SERVER_FIELD_KINDS.items():
        if getattr(server, name) != getattr(default, name) and server.kind != kind:
            raise UserError(f"{where}.{name} is only used by {kind} servers, not {server.kind}; remove it")
    if server.kind == "transformers" and not server.continuous_batching:
        for name in ("cb_num_blocks", "cb_max_batch_tokens"):
            if getattr(server, name) != getattr(default, name):
                raise UserError(f"{where}.{name} is only used with {where}.continuous_batching: true; remove it")


def _refuse_unused_backend_fields(backend: SynthesisBackendConfig) -> None:
    """The synthesis backend's fields of the other kind are refused; `run` sets the adapters itself."""
    if backend.server.lora_adapters:
        raise UserError("backend.server.lora_adapters is set by run (each iteration's role adapters); remove it")
    if backend.kind in ("inprocess", "ray"):
        for name in (f.name for f in dataclasses.fields(ServerConfig)):
            if getattr(backend.server, name) != getattr(ServerConfig(), name):
                raise UserError(f"backend.server.{name} is only used with backend.kind: endpoint "
                                f"({backend.kind} starts no server); remove it")
    if backend.kind != "ray":
        for name in (f.name for f in dataclasses.fields(RayStageConfig)):
            if getattr(backend.ray, name) != getattr(RayStageConfig(), name):
                raise UserError(f"backend.ray.{name} is only used with backend.kind: ray; remove it")
    default = SynthesisBackendConfig()
    for name in ("max_batch_size", "torch_threads"):
        if backend.kind == "endpoint" and getattr(backend, name) != getattr(default, name):
            raise UserError(f"backend.{name} is only used with backend.kind: inprocess (set backend.server.{name})")
    if backend.kind == "endpoint":
        _refuse_unused_server_fields(backend.server, "backend.server")


def _seed_files(given: dict[str, str], languages: list[str], data_dir: str | None) -> dict[str, str]:
    if not data_dir:
        return dict(given)
    defaults = {lang: str(Path(data_dir) / f"seed_instructions_{lang}.jsonl") for lang in languages}
    return {**defaults, **given}


def _require_seed_files(section: str, seed_files: dict[str, str], languages: list[str]) -> None:
    for lang in languages:
        if lang not in seed_files:
            raise UserError(f"{section}.seed_files.{lang}: set it, or data_dir (seed_instructions_{lang}.jsonl there)")
        if not Path(seed_files[lang]).is_file():
            raise UserError(f"{section}.seed_files.{lang}: file not found: {seed_files[lang]}")
