"""`selflengthen eval`: generate answers through lm-eval against an endpoint, then score them.

lm-eval does the generation (its `local-chat-completions` backend with `num_concurrent`, or
its in-process `hf` / `vllm` backends); `tasks.scoring` turns its logged samples into the
benchmarks' published scores. lm-eval's request cache lives in the run directory, so re-running
into the same directory resumes an interrupted eval without sending finished requests again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.markup import escape

from harness.config import LARGEST_INT
from harness.errors import UserError
from harness.scoring.lm_eval_driver import GenerationRequest, check_tasks, generate_answers
from harness.serving.client import endpoint_target, lm_eval_gen_kwargs, refuse_unsupported, served_generation_defaults
from harness.serving.models import DEFAULT_MODEL, check_model_available, check_model_name, merge_once, resolve_model
from harness.serving.serve import Endpoint, ServerConfig, check_reachable, serve
from infra.compute import compute_threads
from infra.journal import write_json_atomically as write_json
from infra.sampling import SamplingConfig
from tasks.data import resolve_data_dir
from tasks.metadata import primary_metric
from tasks.registry import task_names, unknown_task
from tasks.scoring import ScoringInputError, family_of, score_lm_eval_samples


@dataclass
class ScoringConfig:
    """How answers are generated: what one `selflengthen eval` and an experiment's `eval` section share.

    Fields:
        backend: `endpoint` (an OpenAI-compatible server; started here unless `endpoint` is
            given), or lm-eval's in-process `hf` / `vllm` backends.
        server: how to start the server when no `endpoint` is given.
        num_concurrent: requests in flight (for `hf` / `vllm`: lm-eval's batch size).
        max_gen_toks: cap on answer tokens, overriding the tasks' own (for quick CPU runs).
        sampling: decoding for every task's answers; None (the default): each task's published
            decoding, its YAML's generation_kwargs (`tasks.decoding`: LongBench-Write, LongWrite-Ruler
            and LonGen sample at temperature 0.5). A field the backend cannot honour is refused
            (`harness.serving.client.refuse_unsupported`); answer length is `max_gen_toks`, so
            `sampling.max_tokens` is refused, and the seed is `seed`, so `sampling.seed` is too.
        seed: each answer is sampled with a seed derived from this and its prompt
            (`harness.scoring.lm_eval_model.prompt_seed`), so a re-run draws the same answers.
    """

    backend: Literal["endpoint", "hf", "vllm"] = field(default="endpoint", metadata={"help": "Generation backend."})
    server: ServerConfig = field(default_factory=ServerConfig, metadata={"help": "How to start a server."})
    num_concurrent: int = field(default=8, metadata={"help": "Requests in flight (hf/vllm: batch size)."})
    max_gen_toks: int | None = field(
        default=None, metadata={"help": "Cap on answer tokens for every task (None: each task's own, e.g. 16384)."}
    )
    sampling: SamplingConfig | None = field(
        default=None, metadata={"help": "Decoding of every task's answers (None: each task's published decoding)."}
    )
    seed: int = field(default=0, metadata={"help": "Seeds each answer's sampler, with its prompt."})


@dataclass
class EvalConfig(ScoringConfig):
    """What to evaluate, on what, and how its answers are generated (the `ScoringConfig` fields).

    Fields:
        model: Hub id, local path, or `smollm2-135m` (the embedded default).
        adapter: a LoRA adapter folder (PEFT's format, as `selflengthen train` writes it) to evaluate on top
            of `model`: merged into it first, into the run directory's `merged_model/` (kept, so a re-run
            resumes without merging again), so every backend and server serves it as a plain checkpoint.
        tasks: lm-eval task names from `tasks/`.
        endpoint: base URL of a running server (e.g. http://127.0.0.1:8000/v1); None starts one.
        api_key_env: environment variable holding that server's API key (never logged).
        limit: documents per task at most (None: all).
        data_dir: folder with the benchmark .jsonl files (else SELFLENGTHEN_DATA_DIR, else the Hub).
    """

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Hub id, local path or smollm2-135m."})
    adapter: str | None = field(default=None, metadata={"help": "A LoRA adapter folder merged into model first."})
    tasks: list[str] = field(default_factory=lambda: ["longbench_write_en_mini"], metadata={"help": "Task names."})
    endpoint: str | None = field(default=None, metadata={"help": "Base URL of a running server."})
    api_key_env: str | None = field(default=None, metadata={"help": "Env var with the endpoint's API key."})
    limit: int | None = field(default=None, metadata={"help": "Documents per task at most."})
    data_dir: str | None = field(default=None, metadata={"help": "Folder with the benchmark .jsonl files."})


def validate_eval(config: EvalConfig, where: str = "eval") -> None:
    """Refuse, naming the field, every setting that is out of range or that the backend would ignore."""
    if not config.tasks or any(not task.strip() for task in config.tasks):
        raise UserError(f"{where}.tasks must name at least one task, got {config.tasks!r}")
    unknown = unknown_task(config.tasks)
    if unknown is not None:
        raise UserError(f"unknown task {unknown!r}; available: {', '.join(task_names())}")
    for task in config.tasks:
        try:
            primary_metric(task, family_of(task))
        except ValueError as exc:  # a task YAML edited to gate on a metric the task never writes
            raise UserError(str(exc)) from None
    if not config.endpoint:
        check_model_name(config.model, f"{where}.model")
    elif not _is_http_url(config.endpoint):
        raise UserError(f"{where}.endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1, got {config.endpoint!r}")
    for name in ("limit", "max_gen_toks"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise UserError(f"{where}.{name} must be at least 1 or unset, got {value}")
        if value is not None and value > LARGEST_INT:  # a flag skips the config's bound; lm-eval's islice has it
            raise UserError(f"{where}.{name} must be at most {LARGEST_INT} or unset, got {value}")
    if config.num_concurrent < 1:
        raise UserError(f"{where}.num_concurrent must be at least 1, got {config.num_concurrent}")
    if config.data_dir and not Path(config.data_dir).is_dir():
        raise UserError(f"{where}.data_dir: data directory not found: {config.data_dir}")
    if config.endpoint and config.backend != "endpoint":
        raise UserError(f"{where}.endpoint is only used with backend: endpoint, not {config.backend}")
    if config.adapter is not None:
        if config.endpoint:
            raise UserError(f"{where}.adapter is not used: answers come from {config.endpoint}, which serves "
                            "its own model (merge the adapter and serve that, or drop the endpoint)")
        if not (Path(config.adapter).expanduser() / "adapter_config.json").is_file():
            raise UserError(f"{where}.adapter: {config.adapter} is not a LoRA adapter folder (no adapter_config.json)")
    if config.api_key_env and not config.endpoint:
        raise UserError(f"{where}.api_key_env is only used with {where}.endpoint (a server the harness starts has no key)")
    if (config.endpoint or config.backend != "endpoint") and config.server != ServerConfig():
        raise UserError(f"{where}.server is not used: answers come from "
                        f"{config.endpoint or 'lm-eval ' + config.backend}, not a server the harness starts")
    if config.sampling is not None and config.sampling.seed is not None:
        raise UserError(f"{where}.sampling.seed is not used: "
                        f"each answer is seeded from {where}.seed and its prompt")
    refuse_unsupported(eval_decoding(config, where), "lm-eval-" + eval_target(config), f"{where}.sampling")


def eval_decoding(config: EvalConfig, where: str = "eval") -> SamplingConfig:
    """How every answer of this eval is decoded: `sampling` when set, else the tasks' published decoding.

    lm-eval takes one set of gen_kwargs for all tasks, so tasks that publish different decodings
    are refused together unless `sampling` decides. The seed is `seed` (lm-eval's hf backend takes
    it as its global torch seed instead).
    """
    from tasks.decoding import task_sampling

    decoding = config.sampling
    if decoding is None:
        published = {task: task_sampling(task) for task in config.tasks}
        decoding = published[config.tasks[0]]
        differing = next((task for task, sampling in published.items() if sampling != decoding), None)
        if differing is not None:
            raise UserError(f"tasks {config.tasks[0]!r} and {differing!r} publish different decodings; evaluate them "
                            f"in separate runs, or set {where}.sampling for both")
    return decoding if config.backend == "hf" else dataclasses.replace(decoding, seed=config.seed)


SEEDING = {
    "endpoint-inprocess": "per prompt",
    "endpoint-vllm": "per prompt",
    "endpoint-openai": "per prompt, where the server honours seed",
    "endpoint-transformers": "per prompt into one global generator (reproducible one request at a time)",
    "endpoint-transformers-cb": "per prompt into one global generator (reproducible one request at a time)",
    "vllm": "one seed for every prompt",
    "hf": "one global torch seed (reproducible at the same batch size)",
}
"""How `seed` reaches the sampler, per `eval_target`: what a re-run can expect to reproduce."""


def decoding_record(config: EvalConfig) -> dict[str, dict]:
    """Per task, the decoding its answers get, as run.json records it for the leaderboard's Method section."""
    from tasks.decoding import task_max_gen_toks

    decoding = eval_decoding(config)
    record = {"temperature": decoding.temperature, "top_p": decoding.top_p, "top_k": decoding.top_k,
              "repetition_penalty": decoding.repetition_penalty, "seed": config.seed,
              "seeding": SEEDING[eval_target(config)], "source": "task" if config.sampling is None else "eval.sampling"}
    return {task: {**record, "max_gen_toks": config.max_gen_toks or task_max_gen_toks(task)} for task in config.tasks}


def _is_http_url(value: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def eval_target(config: EvalConfig) -> str:
    """What generates the answers, as `harness.serving.client.lm_eval_gen_kwargs` names it."""
    if config.backend != "endpoint":
        return config.backend
    if config.endpoint:
        return "endpoint-openai"
    return endpoint_target(config.server.kind, config.server.continuous_batching)


def run_eval(config: EvalConfig, out_dir: Path, console: Console | None = None, run_info: dict | None = None) -> dict:
    """Evaluate one model into `out_dir` and return the scores.json content.

    Everything is validated before anything is written, so a refused config leaves no folder.
    """
    console = console or Console(stderr=True)
    validate_eval(config)
    if not config.endpoint:
        check_model_available(config.model, "eval.model")
    data_dir = resolve_data_dir(config.data_dir)
    task_manager = check_tasks(config.tasks, data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = config.model if config.endpoint else resolve_model(config.model)
    model_name = Path(config.model).name if os.sep in config.model else config.model
    if config.adapter is not None:
        adapter = Path(config.adapter).expanduser().resolve()
        model_name = adapter_name(adapter)
        model_path = str(merge_once(model_path, adapter, out_dir / "merged_model"))
    run = {
            "model": model_name,
            "model_path": model_path,
            **({"base_model": config.model, "adapter": str(adapter)} if config.adapter is not None else {}),
            "tasks": list(config.tasks),
            "decoding": decoding_record(config),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "arm": "base",
            "iteration": None,
            "train_stats": None,
            **(run_info or {}),
    }
    write_json(out_dir / "run.json", run)
    with _generation_model(config, model_path, out_dir, console) as (lm_name, lm_args, gen_kwargs):
        if config.max_gen_toks:
            gen_kwargs = {**gen_kwargs, "max_gen_toks": config.max_gen_toks}
        samples = generate_answers(GenerationRequest(lm_name, lm_args, gen_kwargs, config.tasks, config.limit,
                                                     config.seed), task_manager, out_dir / "lm_eval", console, data_dir)
    try:
        scores = score_lm_eval_samples(samples, model_name=run["model"])
    except ScoringInputError as exc:  # a benchmark row the formulas cannot score
        raise UserError(str(exc)) from None
    write_json(out_dir / "scores.json", scores)
    return scores


def adapter_name(adapter: Path) -> str:
    """The model name a run of an adapter is listed under: its folder's name, or its parent's where the folder
    is called `adapter` (as `selflengthen train` names them: train/self_lengthen/final/adapter is `final`)."""
    return adapter.parent.name if adapter.name == "adapter" else adapter.name


@contextlib.contextmanager
def _generation_model(config: EvalConfig, model_path: str, out_dir: Path, console: Console):
    """Yield lm-eval's (model name, model args, gen_kwargs), starting a server if needed."""
    if config.backend in ("hf", "vllm"):
        gen_kwargs = lm_eval_gen_kwargs(eval_decoding(config), config.backend)
        args = {"pretrained": model_path, "batch_size": config.num_concurrent}
        if config.backend == "hf":  # lm-eval's hf backend asks for CUDA unless told otherwise
            import torch

            args["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        yield config.backend, args, gen_kwargs
        return
    if config.endpoint:
        endpoint = Endpoint(base_url=config.endpoint.rstrip("/"), model=config.model, api_key_env=config.api_key_env)
        check_reachable(endpoint)
        yield _endpoint_model(endpoint, config)
        return
    server = config.server
    if server.kind == "transformers" and server.torch_threads is None:
        server = dataclasses.replace(server, torch_threads=compute_threads(1))
    with contextlib.ExitStack() as stack:
        with console.status(escape(f"starting {server.kind} serve for {model_path}")):
            endpoint = stack.enter_context(serve(model_path, server, log_path=out_dir / "server.log"))
        console.print("[green]server ready[/] at " + escape(f"{endpoint.base_url} (log: {out_dir / 'server.log'})"))
        yield _endpoint_model(endpoint, config)


def _endpoint_model(endpoint: Endpoint, config: EvalConfig) -> tuple[str, dict, dict]:
    defaults = served_generation_defaults(endpoint.tokenizer) if endpoint.kind == "transformers" else None
    target = endpoint_target(endpoint.kind, config.server.continuous_batching)
    # An endpoint samples by temperature (and seed); lm-eval reads do_sample only to keep a sampled answer
    # out of its request cache, so that repeats differ. Each prompt is asked once here, so null (not
    # used) lets the cache keep it and a re-run into the same folder resumes instead of sampling again.
    gen_kwargs = {**lm_eval_gen_kwargs(eval_decoding(config), target, defaults), "do_sample": None}
    if os.environ.get(endpoint.api_key_env or "", ""):
        os.environ["OPENAI_API_KEY"] = endpoint.api_key
    args = {
        "model": endpoint.model,
        "base_url": f"{endpoint.base_url}/chat/completions",
        "num_concurrent": config.num_concurrent,
        "max_retries": 3,
        "tokenized_requests": False,
        "timeout": 3600,
    }
    return "selflengthen-chat", args, gen_kwargs
