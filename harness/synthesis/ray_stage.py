"""Requests answered on Ray Data: a pool of engines, each finished shard a Parquet file that a rerun reuses.

The requests (each {"key", "messages" or "prompt", "sampling": SamplingConfig fields, "model": an adapter's
name or None for the base}) are cut into shards of `shard_size`; each shard's answers are written as one
`shard-<hash>.parquet` (atomically) as soon as they exist. A stored answer carries its request's digest, so
a rerun sends only the requests no stored answer matches, however they are grouped: a killed run loses at
most its unfinished shards, and a changed request under an old key is answered again, never mixed up.

Two engines, one per place it runs:
- `inprocess` (CPU): an actor pool of `concurrency` actors, each holding our in-process engine
  (`infra.inprocess`) for one model at a time: the base, or the adapter its shard names (a shard names one
  model). A seeded request decodes as it would alone (the engine's batch invariance), so which actor and which
  batch answer it does not change its text.
- `vllm` (GPUs): Ray Data LLM's vLLM processor (`vLLMEngineProcessorConfig` + `build_processor`),
  `concurrency` replicas of the base with LoRA enabled; a row's `model` names its adapter's folder, which
  makes it a LoRA request. Ray releases before the per-row LoRA fix (ray-project/ray PR #62609) dropped
  it silently; `tests/test_harness_ray_vllm.py` checks on a GPU that a LoRA row's output differs from
  the base's. Not run here (no GPU).
Needs `pip install -e '.[ray]'` (and vLLM for the `vllm` engine).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import secrets
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from infra.backend import truncate_at_stop


@dataclass
class RayStageConfig:
    """Where the requests run and how they are cut up."""

    engine: Literal["inprocess", "vllm"] = field(default="inprocess", metadata={
        "help": "inprocess: actors with the CPU engine; vllm: Ray Data LLM's vLLM processor on GPUs."})
    address: str | None = field(default=None, metadata={
        "help": "Ray cluster to join (`auto`, `ray://host:10001`); None starts a local Ray on this machine."})
    concurrency: int = field(default=2, metadata={"help": "Actors (inprocess) or vLLM replicas (vllm)."})
    cpus_per_actor: float = field(default=1.0, metadata={"help": "inprocess: CPUs Ray reserves for each actor."})
    shard_size: int = field(default=16, metadata={"help": "Requests per shard: the unit of work and of resume."})
    tensor_parallel_size: int = field(default=1, metadata={"help": "vllm: GPUs per replica (tensor parallel)."})
    pipeline_parallel_size: int = field(default=1, metadata={"help": "vllm: pipeline stages per replica."})
    max_lora_rank: int = field(default=64, metadata={"help": "vllm: the largest LoRA rank among the adapters."})
    linger_s: float = field(default=0.2, metadata={
        "help": "Seconds without a new request before a gathered wave goes to Ray."})
    wave_size: int = field(default=4096, metadata={"help": "Most requests in one wave."})

    def __post_init__(self) -> None:
        for name in ("concurrency", "shard_size", "tensor_parallel_size", "pipeline_parallel_size", "max_lora_rank",
                     "wave_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ray.{name} must be a whole number of at least 1, got {value!r}")
        if self.engine not in ("inprocess", "vllm"):
            raise ValueError(f"ray.engine must be inprocess or vllm, got {self.engine!r}")
        for name in ("cpus_per_actor", "linger_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"ray.{name} must be above 0, got {value!r}")


def run_step(requests: list[dict], engine: dict, out_dir: Path, config: RayStageConfig,
             store: ShardStore | None = None) -> list[dict]:
    """Answer `requests` with `engine` ({"model": base folder, "adapters": {name: folder}, other InProcessConfig
    fields}) on Ray; returns one {"key", "text", "finish_reason", "completion_tokens"} per request, in their
    order, or {"key", "error"} for a request the engine could not answer: as on the in-process backend, only that
    request fails, not its shard or wave (and, not stored, it is sent again by a rerun). Requests whose answer is
    already stored in `out_dir` are not sent again. Pass the same `store` to every step on one `out_dir` (one per
    wave gatherer), so each shard file is read once, not once per step."""
    _check_keys(requests)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = store or ShardStore(out_dir)
    stored = store.answers()
    todo = [request for request in requests if request_digest(request) not in stored]
    failed: dict[str, str] = {}
    if todo:
        shards = cut_shards(todo, config.shard_size)
        start_ray(config)
        failed = (_run_on_vllm if config.engine == "vllm" else _run_on_actors)(shards, engine, out_dir, config)
        stored = store.answers()
    missing = [r["key"] for r in requests if request_digest(r) not in stored and r["key"] not in failed]
    if missing:
        raise RuntimeError(f"Ray finished without answering {len(missing)} requests (first: {missing[0]})")
    return [{"key": r["key"], **stored[request_digest(r)]} if request_digest(r) in stored
            else {"key": r["key"], "error": failed[r["key"]]} for r in requests]


def cut_shards(requests: list[dict], size: int) -> list[list[dict]]:
    """Shards of at most `size` requests, each naming one model, a model's shards together: an actor, which holds
    one model at a time, then loads each model once per wave, not once per shard."""
    by_model: dict[str | None, list[dict]] = {}
    for request in requests:
        by_model.setdefault(request.get("model"), []).append(request)
    return [group[i:i + size] for group in by_model.values() for i in range(0, len(group), size)]


def request_digest(request: dict) -> str:
    """sha256 of what decides a request's answer (everything but its key)."""
    text = json.dumps({k: v for k, v in request.items() if k != "key"}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def engine_settings(config, adapters: dict[str, Path] | None = None) -> dict:
    """An InProcessConfig (its `adapter` unset) and the adapters by name, as the plain fields an actor rebuilds
    its engines from."""
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items() if k != "adapter"}
    return {**settings, "adapters": {name: str(path) for name, path in (adapters or {}).items()}}


def _error_text(error: Exception) -> str:
    """A failed request's error as its caller reads it (as Ray Data LLM words a row's error)."""
    return f"{type(error).__name__}: {error}"


def _check_keys(requests: list[dict]) -> None:
    keys = [r.get("key") for r in requests]
    if any(not isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
        raise ValueError("every request needs its own string `key`")


def start_ray(config: RayStageConfig) -> None:
    """Join the configured cluster (or start a local Ray) once per process."""
    import ray

    if not ray.is_initialized():
        ray.init(address=config.address, include_dashboard=False, log_to_driver=False)


def cancel_ray_work() -> None:
    """Cancel the Ray Data work this process runs (a wave, in another thread): each running dataset's executor is
    shut down, which kills its actors and cancels its tasks, and the thread waiting on it returns; the shards
    already written stay. Ray 2.60 has no public handle on a running dataset; its executor is a thread."""
    from ray.data._internal.execution.streaming_executor import StreamingExecutor

    for thread in threading.enumerate():
        if isinstance(thread, StreamingExecutor):
            thread.shutdown(force=True)


class ShardStore:
    """Every finished shard's answers in `out_dir` by request digest, each file read once (a shard is written
    whole and atomically, and never changes; a torn temporary file is not a shard)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.read: set[str] = set()
        self.by_digest: dict[str, dict] = {}

    def answers(self) -> dict[str, dict]:
        import pyarrow.parquet as pq

        for path in sorted(self.out_dir.glob("shard-*.parquet")):
            if path.name in self.read:
                continue
            for row in pq.read_table(path).to_pylist():
                digest = row.pop("digest")
                row.pop("key", None)
                self.by_digest[digest] = row
            self.read.add(path.name)
        return self.by_digest


def _write_shard(out_dir: Path, answers: list[dict]) -> None:
    """One shard's answers, named by their digests, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = hashlib.sha256("".join(a["digest"] for a in answers).encode()).hexdigest()[:16]
    schema = pa.schema([("key", pa.string()), ("digest", pa.string()), ("text", pa.string()),
                        ("finish_reason", pa.string()), ("completion_tokens", pa.int64())])
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(answers, schema=schema), sink)
    _atomic_write(out_dir / f"shard-{name}.parquet", sink.getvalue().to_pybytes())


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# -- inprocess: an actor pool of CPU engines ---------------------------------------------------------


def _run_on_actors(shards: list[list[dict]], engine: dict, out_dir: Path, config: RayStageConfig) -> dict[str, str]:
    """Every shard answered by the actor pool; returns the error of each request an engine failed, by key."""
    import ray

    items = [{"rows": json.dumps(rows)} for rows in shards]
    done = ray.data.from_items(items).map_batches(
        _EngineActor, fn_constructor_kwargs={"engine": engine, "out_dir": str(out_dir)}, batch_size=1,
        concurrency=min(config.concurrency, len(items)), num_cpus=config.cpus_per_actor).materialize()
    return {failure["key"]: failure["error"] for row in done.iter_rows() for failure in json.loads(row["failed"])}


class _EngineActor:
    """One engine at a time per actor (the base, or an adapter merged into it): a shard naming another model
    closes the loaded one and lets its weights go before loading the next, so an actor never holds two merged
    copies, each with its decode thread. Each call answers whole shards, writes each one's answered requests to
    its file and returns the failed ones."""

    def __init__(self, engine: dict, out_dir: str) -> None:
        self.engine = dict(engine)
        self.adapters = self.engine.pop("adapters", {})
        self.loaded: tuple[str | None, object] | None = None
        self.out_dir = Path(out_dir)

    def __call__(self, batch: dict) -> dict:
        failed = []
        for rows in batch["rows"]:
            answers = asyncio.run(self._answer(json.loads(rows)))
            failed += [answer for answer in answers if "error" in answer]
            answered = [answer for answer in answers if "error" not in answer]
            if answered:
                _write_shard(self.out_dir, answered)
        return {"failed": [json.dumps(failed)]}

    def _backend(self, name: str | None):
        from infra.inprocess import InProcessBackend, InProcessConfig

        if self.loaded is not None and self.loaded[0] == name:
            return self.loaded[1]
        if name is not None and name not in self.adapters:
            raise ValueError(f"a request names adapter {name!r}; this step has {sorted(self.adapters) or 'none'}")
        self._release()
        adapter = Path(self.adapters[name]) if name is not None else None
        backend = InProcessBackend(InProcessConfig(**{**self.engine, "model": Path(self.engine["model"]),
                                                      "adapter": adapter}))
        self.loaded = (name, backend)
        return backend

    def _release(self) -> None:
        """Close the loaded engine (its decode thread ends) and free its weights before another loads."""
        if self.loaded is not None:
            self.loaded[1].close()
            self.loaded = None
            gc.collect()

    async def _answer(self, rows: list[dict]) -> list[dict]:
        """Each row's answer or error, a model's rows together (the engine is swapped between models, never while
        one of its requests runs)."""
        from infra.sampling import SamplingConfig

        async def one(row: dict) -> dict:
            backend = self._backend(row.get("model"))
            sampling = SamplingConfig(**row.get("sampling", {}))
            completion = await (backend.chat(row["messages"], sampling) if "messages" in row
                                else backend.complete(row["prompt"], sampling))
            return {"key": row["key"], "digest": request_digest(row), "text": completion.text,
                    "finish_reason": completion.finish_reason, "completion_tokens": completion.completion_tokens}

        results: dict[str, dict | BaseException] = {}
        for group in cut_shards(rows, len(rows)):
            answers = await asyncio.gather(*(one(row) for row in group), return_exceptions=True)
            results.update((row["key"], answer) for row, answer in zip(group, answers))
        return [{"key": row["key"], "error": _error_text(results[row["key"]])}
                if isinstance(results[row["key"]], Exception) else results[row["key"]] for row in rows]


# -- vllm: Ray Data LLM's processor on GPUs ----------------------------------------------------------


def vllm_processor_config(engine: dict, config: RayStageConfig):
    """The processor's settings: the base with LoRA enabled for the adapters, prompts already templated."""
    from ray.data.llm import vLLMEngineProcessorConfig

    engine_kwargs = {"tensor_parallel_size": config.tensor_parallel_size,
                     "pipeline_parallel_size": config.pipeline_parallel_size}
    if engine.get("adapters"):
        engine_kwargs.update(enable_lora=True, max_lora_rank=config.max_lora_rank,
                             max_loras=len(engine["adapters"]))
    return vLLMEngineProcessorConfig(model_source=engine["model"], engine_kwargs=engine_kwargs,
                                     concurrency=config.concurrency, batch_size=config.shard_size,
                                     chat_template_stage=False, tokenize_stage=True, detokenize_stage=True,
                                     should_continue_on_error=True)


def vllm_row(request: dict, engine: dict, template) -> dict:
    """A request as the processor's row: the prompt text, the adapter's folder as `model` (a LoRA request),
    and vLLM's sampling parameters; `template` turns chat messages into the prompt text."""
    sampling = dict(request.get("sampling", {}))
    params = {k: sampling[k] for k in ("temperature", "top_p", "top_k", "repetition_penalty", "max_tokens",
                                       "stop", "seed") if sampling.get(k) is not None}
    if sampling.get("json_schema") is not None:
        params["structured_outputs"] = {"json": sampling["json_schema"]}
    if sampling.get("top_logprobs") is not None:
        raise ValueError("the Ray stage does not return logprobs (top_logprobs)")
    row = {"key": request["key"], "digest": request_digest(request), "sampling_params": params,
           "prompt": template(request["messages"]) if "messages" in request else request["prompt"]}
    if request.get("model") is not None:
        row["model"] = engine["adapters"][request["model"]]
    return row


def vllm_answer(row: dict, params: dict, end_ids: set[int]) -> dict:
    """A processor output row as an answer, with vLLM's own finish reason rebuilt from what Ray Data LLM keeps.

    Ray's rows (2.60) carry vLLM's token ids but not its `finish_reason`, and its detokenize stage decodes every
    token, a stop string and what follows it included. vLLM ends a request as "stop" at an end-of-sequence or stop
    token (checked before the length cap, and kept in the token ids) or at a stop string (its text cut before it),
    so only an answer that used every allowed token and ended on neither is "length", as vLLM says.
    """
    text, stopped = truncate_at_stop(row["generated_text"], params.get("stop") or [])
    tokens = list(row["generated_tokens"])
    cap = params.get("max_tokens")
    capped = cap is not None and len(tokens) >= cap > 0 and not stopped and tokens[-1] not in end_ids
    return {"key": row["key"], "digest": row["digest"], "text": text, "finish_reason": "length" if capped else "stop",
            "completion_tokens": len(tokens)}


def _run_on_vllm(shards: list[list[dict]], engine: dict, out_dir: Path, config: RayStageConfig) -> dict[str, str]:
    """One processor over every unanswered request; each shard's file is written with its answers once its rows are
    all back. Returns the error of each request that failed, by key: a row vLLM could not answer (the processor goes
    on past it: `should_continue_on_error`) or one that could not be built."""
    import ray
    from ray.data.llm import build_processor
    from transformers import AutoTokenizer

    from harness.serving.client import served_generation_defaults

    tokenizer = AutoTokenizer.from_pretrained(engine["model"])

    def template(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    rows, failed = [], {}
    for index, shard in enumerate(shards):
        for request in shard:
            try:
                rows.append({**vllm_row(request, engine, template), "shard": index})
            except (KeyError, ValueError) as error:  # an adapter this step does not have, a field vLLM cannot take
                failed[request["key"]] = _error_text(error)
    if not rows:
        return failed
    params = {row["digest"]: row["sampling_params"] for row in rows}
    eos = served_generation_defaults(engine["model"]).get("eos_token_id")
    end_ids = {i for i in [tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])] if i is not None}
    processor = build_processor(vllm_processor_config(engine, config), postprocess=lambda row: {
        key: row[key] for key in ("shard", "key", "digest", "generated_text", "generated_tokens")})
    waiting = Counter(row["shard"] for row in rows)
    done: dict[int, list[dict]] = {}
    for row in processor(ray.data.from_items(rows)).iter_rows():
        shard = row["shard"]
        if row.get("__inference_error__"):
            failed[row["key"]] = row["__inference_error__"]
        else:
            done.setdefault(shard, []).append(vllm_answer(row, params[row["digest"]], end_ids))
        waiting[shard] -= 1
        if not waiting[shard] and shard in done:
            _write_shard(out_dir, done.pop(shard))
    return failed
