"""`selflengthen eval`: generate answers through lm-eval against an endpoint, then score them.

lm-eval does the generation (its `local-chat-completions` backend with `num_concurrent`, or
its in-process `hf` / `vllm` backends); `tasks.scoring` turns its logged samples into the
benchmarks' published scores. lm-eval's request cache lives in the run directory, so re-running
into the same directory resumes an interrupted eval without sending finished requests again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.client import sampling_request, served_generation_defaults
from harness.errors import UserError
from harness.models import DEFAULT_MODEL, resolve_model
from infra.journal import write_json_atomically as write_json
from harness.serve import Endpoint, ServerConfig, check_reachable, serve
from infra.compute import compute_threads
from infra.sampling import SamplingConfig


@dataclass
class EvalConfig:
    """What to evaluate and how.

    Fields:
        model: Hub id, local path, or `smollm2-135m` (the embedded default).
        tasks: lm-eval task names from `tasks/`.
        backend: `endpoint` (an OpenAI-compatible server; started here unless `endpoint` is
            given), or lm-eval's in-process `hf` / `vllm` backends.
        endpoint: base URL of a running server (e.g. http://127.0.0.1:8000/v1); None starts one.
        api_key_env: environment variable holding that server's API key (never logged).
        server: how to start the server when `endpoint` is None.
        limit: documents per task at most (None: all).
        num_concurrent: requests in flight.
        sampling: decoding for the answers; greedy by default, as lm-eval does. (transformers
            serve with continuous batching drops repetition_penalty, so it is not the default.)
        max_gen_toks: cap on answer tokens, overriding the tasks' own (for quick CPU runs).
        data_dir: folder with the benchmark .jsonl files (else SELFLENGTHEN_DATA_DIR, else the Hub).
    """

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Hub id, local path or smollm2-135m."})
    tasks: list[str] = field(default_factory=lambda: ["longbench_write_en_mini"], metadata={"help": "Task names."})
    backend: Literal["endpoint", "hf", "vllm"] = field(default="endpoint", metadata={"help": "Generation backend."})
    endpoint: str | None = field(default=None, metadata={"help": "Base URL of a running server."})
    api_key_env: str | None = field(default=None, metadata={"help": "Env var with the endpoint's API key."})
    server: ServerConfig = field(default_factory=ServerConfig, metadata={"help": "How to start a server."})
    limit: int | None = field(default=None, metadata={"help": "Documents per task at most."})
    num_concurrent: int = field(default=8, metadata={"help": "Requests in flight."})
    max_gen_toks: int | None = field(
        default=None, metadata={"help": "Cap on answer tokens for every task (None: each task's own, e.g. 16384)."}
    )
    sampling: SamplingConfig = field(default_factory=SamplingConfig, metadata={"help": "Decoding of answers."})
    data_dir: str | None = field(default=None, metadata={"help": "Folder with the benchmark .jsonl files."})


def tasks_dir() -> Path:
    import tasks

    return Path(tasks.__file__).resolve().parent


def run_eval(config: EvalConfig, out_dir: Path, console: Console | None = None, run_info: dict | None = None) -> dict:
    """Evaluate one model into `out_dir` and return the scores.json content."""
    console = console or Console(stderr=True)
    if config.data_dir:
        if not Path(config.data_dir).is_dir():
            raise UserError(f"data directory not found: {config.data_dir}")
        os.environ["SELFLENGTHEN_DATA_DIR"] = str(Path(config.data_dir).resolve())
    task_manager = _task_manager()
    unknown = [t for t in config.tasks if t not in task_manager.all_tasks]
    if unknown:
        ours = sorted(n for n in task_manager.all_tasks if n.startswith(("longen", "longbench", "longwrite")))
        raise UserError(f"unknown task {unknown[0]!r}; available: {', '.join(ours)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = config.model if config.endpoint else resolve_model(config.model)
    write_json(
        out_dir / "run.json",
        {
            "model": Path(config.model).name if os.sep in config.model else config.model,
            "model_path": model_path,
            "tasks": list(config.tasks),
            "sampling": dataclasses.asdict(config.sampling),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "arm": "base",
            "iteration": None,
            "train_stats": None,
            **(run_info or {}),
        },
    )
    with _generation_model(config, model_path, out_dir, console) as (lm_name, lm_args, gen_kwargs):
        if config.max_gen_toks:
            gen_kwargs = {**gen_kwargs, "max_gen_toks": config.max_gen_toks}
        samples = _generate(config, lm_name, lm_args, gen_kwargs, task_manager, out_dir, console)
    scores = score_samples(samples, model_name=json.loads((out_dir / "run.json").read_text())["model"])
    write_json(out_dir / "scores.json", scores)
    return scores


@contextlib.contextmanager
def _generation_model(config: EvalConfig, model_path: str, out_dir: Path, console: Console):
    """Yield lm-eval's (model name, model args, gen_kwargs), starting a server if needed."""
    if config.backend in ("hf", "vllm"):
        gen_kwargs = {"temperature": config.sampling.temperature, "do_sample": config.sampling.do_sample}
        if config.sampling.do_sample:
            gen_kwargs["top_p"] = config.sampling.top_p
        yield config.backend, {"pretrained": model_path}, gen_kwargs
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
        with console.status(f"starting {server.kind} serve for {model_path}"):
            endpoint = stack.enter_context(serve(model_path, server, log_path=out_dir / "server.log"))
        console.print(f"[green]server ready[/] at {endpoint.base_url} (log: {out_dir / 'server.log'})")
        yield _endpoint_model(endpoint, config)


def _endpoint_model(endpoint: Endpoint, config: EvalConfig) -> tuple[str, dict, dict]:
    defaults = served_generation_defaults(endpoint.tokenizer) if endpoint.kind == "transformers" else None
    request = sampling_request(config.sampling, endpoint.kind, defaults)
    gen_kwargs = {k: v for k, v in request.items() if k not in ("extra_body", "max_tokens", "stop", "seed")}
    gen_kwargs.update(request.get("extra_body", {}))
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


def _generate(config, lm_name, lm_args, gen_kwargs, task_manager, out_dir: Path, console: Console) -> dict[str, list]:
    import lm_eval

    import harness.lm_eval_model as progress_model

    lm_dir = out_dir / "lm_eval"
    lm_dir.mkdir(exist_ok=True)
    _log_lm_eval_to(lm_dir / "lm_eval.log")
    columns = (TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("requests", total=_request_count(config))
        progress_model.set_progress_callback(lambda: progress.advance(bar))
        try:
            results = lm_eval.simple_evaluate(
                model=lm_name,
                model_args=lm_args,
                tasks=list(config.tasks),
                limit=config.limit,
                use_cache=str(lm_dir / "requests_cache"),
                log_samples=True,
                apply_chat_template=lm_name == "selflengthen-chat",
                gen_kwargs=gen_kwargs or None,
                task_manager=task_manager,
                bootstrap_iters=0,
            )
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"lm-eval failed: {_root_message(exc)}") from None
        finally:
            progress_model.set_progress_callback(None)
    if results is None:
        raise UserError("lm-eval returned no results")
    samples = results.pop("samples", {})
    write_json(lm_dir / "results.json", json.loads(json.dumps(results, default=str)))  # lm-eval keeps objects in it
    for task, task_samples in samples.items():
        with open(lm_dir / f"samples_{task}.jsonl", "w", encoding="utf-8") as fh:
            for sample in task_samples:
                fh.write(json.dumps(sample, ensure_ascii=False, default=str) + "\n")
    return samples


def score_samples(samples: dict[str, list[dict]], model_name: str) -> dict[str, Any]:
    """Score lm-eval's logged samples with the benchmarks' own formulas (`tasks.scoring`)."""
    from tasks.scoring import score_predictions

    scored = {}
    for task, task_samples in sorted(samples.items()):
        rows = []
        for sample in sorted(task_samples, key=lambda s: s["doc_id"]):
            response = sample["filtered_resps"][0] if sample.get("filtered_resps") else sample["resps"][0][0]
            rows.append({**sample["doc"], "doc_id": sample["doc_id"], "response": response})
        scored[task] = score_predictions(task, rows)
    return {"model": model_name, "tasks": scored}


def _request_count(config: EvalConfig) -> int | None:
    """How many answers lm-eval will ask for, for the progress bar (None when unknown)."""
    from tasks.data import load_benchmark

    try:
        sizes = [len(load_benchmark(task)) for task in config.tasks]
    except Exception:  # the bar is a nicety; lm-eval reports real data problems itself
        return None
    return sum(min(size, config.limit) if config.limit else size for size in sizes)


def _log_lm_eval_to(path: Path) -> None:
    """lm-eval logs every retry and setting at length: keep it in the run directory, off the terminal."""
    logger = logging.getLogger("lm_eval")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_dir()))


def _root_message(exc: BaseException) -> str:
    """The innermost cause, first line: what actually went wrong (e.g. a refused connection)."""
    while True:
        inner = getattr(exc, "last_attempt", None)
        if inner is not None and inner.exception() is not None:
            exc = inner.exception()
            continue
        if exc.__cause__ is not None:
            exc = exc.__cause__
            continue
        break
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}"
