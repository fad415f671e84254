"""A synthesis step on Ray Data (the first slice of `backend: {kind: ray}`): a real local Ray with 2 CPUs, an actor
pool of in-process engines on the tiny model, shards as Parquet files. Skipped without `pip install -e '.[ray]'`."""

from __future__ import annotations

import asyncio

import pytest

from harness.ray_stage import RayStageConfig, engine_settings, run_step

SAMPLING = {"temperature": 0.7, "top_p": 0.9, "top_k": 20, "max_tokens": 8}
REQUESTS = [{"key": f"gen/{i}", "messages": [{"role": "user", "content": f"Write about topic {i}."}],
             "sampling": {**SAMPLING, "seed": 100 + i}} for i in range(4)] + \
           [{"key": f"ext/{i}", "prompt": f"Draft {i}: the river ran", "sampling": {**SAMPLING, "seed": 200 + i}}
            for i in range(3)]


@pytest.mark.parametrize("field, value", [("concurrency", 0), ("shard_size", 0), ("cpus_per_actor", 0)])
def test_a_pool_without_actors_or_shards_is_refused(field, value):
    with pytest.raises(ValueError, match=f"ray.{field} must be"):
        RayStageConfig(**{field: value})


def test_requests_without_their_own_key_are_refused(tmp_path):
    with pytest.raises(ValueError, match="its own string `key`"):
        run_step([{"key": "a", "prompt": "x"}, {"key": "a", "prompt": "y"}], {}, tmp_path, RayStageConfig())


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def in_process_answers(tiny_model_dir) -> dict[str, str]:
    from infra.inprocess import InProcessBackend, InProcessConfig
    from infra.sampling import SamplingConfig

    async def answer(backend):
        async def one(row):
            sampling = SamplingConfig(**row["sampling"])
            done = await (backend.chat(row["messages"], sampling) if "messages" in row
                          else backend.complete(row["prompt"], sampling))
            return row["key"], done.text
        return dict(await asyncio.gather(*(one(r) for r in REQUESTS)))

    with InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1)) as backend:
        return asyncio.run(answer(backend))


@pytest.mark.slow
def test_the_ray_step_answers_every_request_as_the_in_process_engine_does(local_ray, tiny_model_dir, tmp_path):
    from infra.inprocess import InProcessConfig

    engine = engine_settings(InProcessConfig(tiny_model_dir, torch_threads=1))
    rows = run_step(REQUESTS, engine, tmp_path / "step", RayStageConfig(concurrency=2, shard_size=2))
    assert [r["key"] for r in rows] == [r["key"] for r in REQUESTS]
    assert {r["key"]: r["text"] for r in rows} == in_process_answers(tiny_model_dir)
    assert sorted(p.name for p in (tmp_path / "step").glob("shard-*.parquet")) == [f"shard-0000{i}.parquet"
                                                                                    for i in range(4)]


@pytest.mark.slow
def test_a_rerun_after_a_kill_sends_only_the_shards_without_a_file(local_ray, tiny_model_dir, tmp_path):
    from infra.inprocess import InProcessConfig

    engine = engine_settings(InProcessConfig(tiny_model_dir, torch_threads=1))
    config = RayStageConfig(concurrency=2, shard_size=3)
    step = tmp_path / "step"
    first = run_step(REQUESTS, engine, step, config)
    # What a kill mid-step leaves: finished shards as files, the rest missing, a torn temporary file.
    (step / "shard-00001.parquet").unlink()
    (step / ".shard-00001.parquet.0123456789ab.tmp").write_bytes(b"PAR1 torn")
    kept = {p.name: p.stat().st_mtime_ns for p in step.glob("shard-*.parquet")}
    assert run_step(REQUESTS, engine, step, config) == first
    assert {p.name: p.stat().st_mtime_ns for p in step.glob("shard-*.parquet") if p.name in kept} == kept
    with pytest.raises(ValueError, match="holds the shards of other requests"):
        run_step(REQUESTS[:-1], engine, step, config)
