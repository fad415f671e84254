"""One synthesis step's requests on Ray Data: a pool of in-process engines, resumable by Parquet shard.

The first slice of `backend: {kind: ray}` (issue 24), not yet wired into `run`: the requests of a step
(self-instruct, suitability, answers, an Extender round) are cut, in the order given, into shards of
`shard_size`; each shard is one row of a Ray Data dataset, and an actor pool of `concurrency` actors, each
holding its own engine (`infra.inprocess.InProcessBackend`, the CPU engine), answers whole shards and writes
each as `shard-NNNNN.parquet` (atomically). A killed run leaves finished shards as files, so a rerun sends
only the shards without one. A seeded request decodes as it would alone (the engine's batch invariance), so
which actor and which batch answer it does not change its text. Needs `pip install -e '.[ray]'`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST = "manifest.json"


@dataclass
class RayStageConfig:
    """Where the step runs and how it is cut up."""

    address: str | None = field(default=None, metadata={
        "help": "Ray cluster to join (`auto`, `ray://host:10001`); None starts a local Ray on this machine."})
    concurrency: int = field(default=2, metadata={"help": "Actors, each with its own engine, answering shards."})
    cpus_per_actor: float = field(default=1.0, metadata={"help": "CPUs Ray reserves for each actor."})
    shard_size: int = field(default=16, metadata={"help": "Requests per shard: the unit of work and of resume."})

    def __post_init__(self) -> None:
        for name in ("concurrency", "shard_size"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int) \
                    or getattr(self, name) < 1:
                raise ValueError(f"ray.{name} must be a whole number of at least 1, got {getattr(self, name)!r}")
        if not self.cpus_per_actor > 0:
            raise ValueError(f"ray.cpus_per_actor must be above 0, got {self.cpus_per_actor!r}")


def run_step(requests: list[dict], engine: dict, out_dir: Path, config: RayStageConfig) -> list[dict]:
    """Answer `requests` ({"key", "messages" or "prompt", "sampling": SamplingConfig fields}) with `engine`
    (InProcessConfig fields) on Ray; returns one {"key", "text", "finish_reason", "completion_tokens"} per
    request, in their order. Shards already in `out_dir` are not sent again."""
    import ray

    shards = _shards(requests, config.shard_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(out_dir, shards, config.shard_size)
    todo = [{"shard": i, "rows": json.dumps(rows)} for i, rows in enumerate(shards)
            if not _shard_path(out_dir, i).is_file()]
    if todo:
        if not ray.is_initialized():
            ray.init(address=config.address, include_dashboard=False, log_to_driver=False)
        dataset = ray.data.from_items(todo).map_batches(
            _EngineActor, fn_constructor_kwargs={"engine": engine, "out_dir": str(out_dir)}, batch_size=1,
            concurrency=config.concurrency, num_cpus=config.cpus_per_actor)
        dataset.materialize()
    return [row for i in range(len(shards)) for row in _read_shard(_shard_path(out_dir, i))]


def _shards(requests: list[dict], size: int) -> list[list[dict]]:
    keys = [r.get("key") for r in requests]
    if any(not isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
        raise ValueError("every request needs its own string `key`")
    return [requests[i:i + size] for i in range(0, len(requests), size)]


def _check_manifest(out_dir: Path, shards: list[list[dict]], size: int) -> None:
    """The shards' keys, recorded on the first run: a rerun with other requests would mix two steps' answers."""
    manifest = {"shard_size": size,
                "shards": [hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest() for s in shards]}
    path = out_dir / MANIFEST
    if path.is_file():
        if json.loads(path.read_text(encoding="utf-8")) != manifest:
            raise ValueError(f"{out_dir} holds the shards of other requests (or another shard_size); "
                             "use a new folder for a changed step")
        return
    _atomic_write(path, json.dumps(manifest).encode())


def _shard_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"shard-{index:05d}.parquet"


def _read_shard(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


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


class _EngineActor:
    """One engine per actor, loaded once; each call answers whole shards and writes each one's file."""

    def __init__(self, engine: dict, out_dir: str) -> None:
        from infra.inprocess import InProcessBackend, InProcessConfig

        self.backend = InProcessBackend(InProcessConfig(**{**engine, "model": Path(engine["model"])}))
        self.out_dir = Path(out_dir)

    def __call__(self, batch: dict) -> dict:
        for index, rows in zip(batch["shard"], batch["rows"]):
            answers = asyncio.run(self._answer(json.loads(rows)))
            _atomic_write(_shard_path(self.out_dir, int(index)), _parquet_bytes(answers))
        return {"shard": list(batch["shard"])}

    async def _answer(self, rows: list[dict]) -> list[dict]:
        from infra.sampling import SamplingConfig

        async def one(row: dict) -> dict:
            sampling = SamplingConfig(**row.get("sampling", {}))
            completion = await (self.backend.chat(row["messages"], sampling) if "messages" in row
                                else self.backend.complete(row["prompt"], sampling))
            return {"key": row["key"], "text": completion.text, "finish_reason": completion.finish_reason,
                    "completion_tokens": completion.completion_tokens}

        return list(await asyncio.gather(*(one(row) for row in rows)))


def _parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("key", pa.string()), ("text", pa.string()), ("finish_reason", pa.string()),
                        ("completion_tokens", pa.int64())])
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink)
    return sink.getvalue().to_pybytes()


def engine_settings(config) -> dict:
    """An InProcessConfig as the plain fields an actor rebuilds it from."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
