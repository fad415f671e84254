"""`backend: {kind: ray}`: one Self-Lengthen iteration on a real local Ray (2 CPUs) with the tiny model gives the
in-process backend's data item for item, and a run killed mid-step loses nothing. Skipped without Ray."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from harness.synthesis.ray_stage import RayStageConfig
from harness.run.stages import fingerprint, settings_of
from harness.synthesis.backends import (
    SynthesisBackendConfig,
    backend_settings,
    role_backends,
)
from harness.run.train import synthesis_backend_name
from infra.journal import read_jsonl
from infra.sampling import SamplingConfig
from selflengthen.pipeline import run_synthesis
from tests.test_harness_cli_errors import run_main
from tests.test_harness_train import train_config
from tests.test_selflengthen_pipeline import (
    REPO,
    engine,
    run_until_killed,
    tiny_config,
    write_seeds,
)

STEPS = ("instructions", "initial_answers", "extended_answers")
DATA = ("generator_data.jsonl", "extender_data.jsonl")


def test_the_ray_section_is_in_a_fingerprint_only_when_ray_runs_the_stage():
    assert "ray" not in backend_settings(SynthesisBackendConfig())
    assert backend_settings(SynthesisBackendConfig(kind="ray"))["ray"]["engine"] == "inprocess"


def test_the_plan_names_the_ray_engine_and_its_workers():
    assert synthesis_backend_name(SynthesisBackendConfig(kind="ray")) == "ray (inprocess, 2 actors)"
    one = SynthesisBackendConfig(kind="ray", ray=RayStageConfig(engine="vllm", concurrency=1))
    assert synthesis_backend_name(one) == "ray (vllm, 1 vLLM replica)"


@pytest.mark.parametrize("backend, message", [
    ({"ray": {"shard_size": 4}}, "backend.ray.shard_size is only used with backend.kind: ray"),
    ({"kind": "ray", "server": {"kind": "vllm"}}, "backend.server.kind is only used with backend.kind: endpoint"),
    ({"kind": "ray", "ray": {"concurrency": 0}}, "ray.concurrency must be a whole number of at least 1"),
    ({"kind": "ray", "ray": {"engine": "tpu"}}, "backend.ray.engine must be one of 'inprocess', 'vllm'"),
])
def test_a_misplaced_or_impossible_ray_setting_is_refused_before_any_work(backend, message, tmp_path, capsys,
                                                                          monkeypatch):
    config = tmp_path / "exp.yaml"
    config.write_text(json.dumps({"model": "smollm2-135m", "out_dir": str(tmp_path / "out"),
                                  "tasks": ["longbench_write_en_mini"], "backend": backend}))
    result = run_main(["run", str(config), "--plan"], capsys, monkeypatch)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_plan_of_examples_ray_cluster_yaml_runs_every_synthesis_step_on_vllm_replicas(capsys, monkeypatch,
                                                                                          data_dir):
    result = run_main(["run", str(REPO / "examples" / "ray_cluster.yaml"), "--plan", "--json"], capsys, monkeypatch)
    stages = {stage["name"]: stage for stage in json.loads(result.stdout)["stages"]}
    synthesis = [name for name in stages if name.endswith("/synthesis") or name in ("backtranslation/data",
                                                                                     "imitation/data")]
    assert len(synthesis) == 5
    assert {stages[name]["backend"] for name in synthesis} == {"ray (vllm, 16 vLLM replicas)"}


def test_a_run_on_ray_without_its_packages_is_refused_before_any_work(tmp_path, capsys, monkeypatch, data_dir):
    """Fault injection: the packages look absent."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("ray", "vllm") else
                        find_spec(name, *a))
    config = tmp_path / "exp.yaml"
    config.write_text(json.dumps({"model": "smollm2-135m", "out_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
                                  "tasks": ["longbench_write_en_mini"], "backend": {"kind": "ray"},
                                  "arms": {"backtranslation": False, "imitation": False}}))
    result = run_main(["run", str(config)], capsys, monkeypatch)
    assert result.returncode == 2 and "backend.kind: ray needs Ray Data: pip install -e '.[ray]'" in result.stderr
    assert not (tmp_path / "out").exists()


def two_requests(tiny_model_dir, tmp_path) -> list:
    """What two callers of one wave get: each its completion or its exception."""
    from harness.synthesis import ray_backend

    async def both():
        model = ray_backend.RayRoles(str(tiny_model_dir), {"generator": None}, tmp_path, RayStageConfig(), {}).role(
            "generator")
        return await asyncio.gather(model.complete("a", SamplingConfig()), model.complete("b", SamplingConfig()),
                                    return_exceptions=True)

    return asyncio.run(both())


def test_a_failed_wave_reaches_every_request_in_it_as_an_error(tiny_model_dir, tmp_path, monkeypatch):
    """Fault injection: Ray fails under a wave; each caller gets the error (the method counts it as no reply)."""
    from harness.synthesis import ray_backend

    def broken(requests, engine, out_dir, config, store):
        raise ConnectionError("the Ray cluster went away")

    monkeypatch.setattr(ray_backend, "run_step", broken)

    assert [type(e) for e in two_requests(tiny_model_dir, tmp_path)] == [ConnectionError, ConnectionError]


def test_a_failed_request_reaches_only_its_own_caller_as_an_error(tiny_model_dir, tmp_path, monkeypatch):
    """Fault injection: the engine failed one request of the wave; the other caller gets its answer."""
    from harness.synthesis import ray_backend

    def one_failed(requests, engine, out_dir, config, store):
        return [{"key": requests[0]["key"], "error": "ValueError: prompt too long"},
                {"key": requests[1]["key"], "text": "fine", "finish_reason": "stop", "completion_tokens": 1}]

    monkeypatch.setattr(ray_backend, "run_step", one_failed)

    failed, answered = two_requests(tiny_model_dir, tmp_path)
    assert isinstance(failed, RuntimeError) and str(failed) == "ValueError: prompt too long"
    assert answered.text == "fine" and answered.finish_reason == "stop"


def test_ctrl_c_during_a_wave_cancels_its_ray_job_and_stops_within_seconds(tiny_model_dir, tmp_path, monkeypatch):
    """Fault injection: a wave that runs until its Ray job is cancelled; SIGINT (Ctrl-C) to `asyncio.run` ends it
    within seconds, not once the wave has run."""
    from harness.synthesis import ray_backend

    job_cancelled = threading.Event()

    def until_cancelled(requests, engine, out_dir, config, store):
        job_cancelled.wait(timeout=30)
        raise ConnectionError("the driver left the cluster")

    monkeypatch.setattr(ray_backend, "run_step", until_cancelled)
    monkeypatch.setattr(ray_backend, "cancel_ray_work", job_cancelled.set, raising=False)

    async def interrupted():
        model = ray_backend.RayRoles(str(tiny_model_dir), {"generator": None}, tmp_path, RayStageConfig(), {}).role(
            "generator")
        asking = asyncio.create_task(model.complete("a", SamplingConfig()))
        await asyncio.sleep(1)  # the wave is in flight
        signal.raise_signal(signal.SIGINT)
        await asking

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(interrupted())
    assert time.monotonic() - start < 10
    assert job_cancelled.is_set()


def test_an_unreachable_ray_cluster_is_one_error_line_before_any_request(tiny_model_dir, tmp_path, monkeypatch):
    """Fault injection: joining the cluster fails; the step stops with one line instead of failing every request."""
    from harness.synthesis import ray_backend
    from harness.errors import UserError

    def unreachable(config):
        raise ConnectionError("Could not find any running Ray instance.\nPlease specify the one to connect to")

    monkeypatch.setattr(ray_backend, "start_ray", unreachable)
    with pytest.raises(UserError) as caught:
        ray_backend.ray_roles(str(tiny_model_dir), {"generator": None}, tmp_path / "shards",
                              RayStageConfig(address="ray://10.0.0.9:10001"), max_batch_size=4, torch_threads=1)
    assert str(caught.value) == ("backend.ray: could not start or join the Ray cluster at 'ray://10.0.0.9:10001': "
                                 "Could not find any running Ray instance.")
    assert not (tmp_path / "shards").exists()


def test_the_wave_settings_are_speed_only_in_a_fingerprint():
    """How requests are gathered into waves does not change an answer (each is keyed and seeded on its own)."""
    default = backend_settings(SynthesisBackendConfig(kind="ray"))
    tuned = backend_settings(SynthesisBackendConfig(kind="ray", ray=RayStageConfig(linger_s=2.0, wave_size=64)))
    assert fingerprint(settings_of(default)) == fingerprint(settings_of(tuned))
    assert default != tuned


def ray_backend_config(address: str | None = None) -> SynthesisBackendConfig:
    return SynthesisBackendConfig(kind="ray", max_batch_size=4, torch_threads=1,
                                  ray=RayStageConfig(address=address, concurrency=2, shard_size=4))


def synthesised(work_dir: Path) -> dict:
    """What an iteration produced: each step's journaled items by key, and the two training sets."""
    steps = {step: {r["key"]: r for r in read_jsonl(work_dir / f"{step}.jsonl")} for step in STEPS}
    return {**steps, **{name: (work_dir / name).read_text() for name in DATA}}


def ray_synthesis(model_dir: Path, seed_file: Path, work_dir: Path, address: str | None = None) -> None:
    config = tiny_config(seed_file, max_in_flight=16)
    adapters = {"generator": None, "extender": None}
    with role_backends(str(model_dir), adapters, ray_backend_config(address), work_dir, config.max_in_flight) \
            as (generator, extender):
        asyncio.run(run_synthesis(generator, extender, config, work_dir))


@pytest.fixture(scope="module")
def both_backends(local_ray, tiny_model_dir, tmp_path_factory):
    """The same iteration (seed, settings) on the in-process engine and on Ray: their work folders."""
    root = tmp_path_factory.mktemp("ray-iteration")
    seeds = write_seeds(root / "seeds.jsonl")
    with engine(tiny_model_dir) as backend:
        asyncio.run(run_synthesis(backend, backend, tiny_config(seeds, max_in_flight=16), root / "inprocess"))
    ray_synthesis(tiny_model_dir, seeds, root / "ray")
    return root


@pytest.mark.slow
def test_one_iteration_on_ray_synthesises_what_the_in_process_backend_does_item_for_item(both_backends):
    in_process, on_ray = synthesised(both_backends / "inprocess"), synthesised(both_backends / "ray")
    assert on_ray == in_process
    assert in_process["initial_answers"] and in_process["extended_answers"]
    assert list((both_backends / "ray" / "ray_shards").glob("shard-*.parquet"))


@pytest.mark.slow
def test_killing_a_ray_iteration_mid_step_then_rerunning_loses_nothing(both_backends, local_ray, tiny_model_dir,
                                                                      tmp_path):
    address = local_ray.get_runtime_context().gcs_address  # the driver dies, the cluster stays
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # with the cluster's token, which ray.init put there
    work_dir = tmp_path / "iter_1"
    command = [sys.executable, "-m", "tests.test_harness_ray_backend", str(tiny_model_dir),
               str(both_backends / "seeds.jsonl"), str(work_dir), address]
    log = tmp_path / "killed.log"
    with log.open("w") as stderr:
        killed = run_until_killed(command, work_dir / "requests.jsonl", after=1, deadline_s=240, stderr=stderr,
                                  env=env)
    assert killed, f"the run ended before it could be killed: {log.read_text()[-2000:]}"
    finished_before = {r["key"] for r in read_jsonl(work_dir / "requests.jsonl")}

    subprocess.run(command, check=True, cwd=REPO, env=env, timeout=600)

    assert synthesised(work_dir) == synthesised(both_backends / "ray")
    ledger = [r["key"] for r in read_jsonl(work_dir / "requests.jsonl")]
    assert len(ledger) == len(set(ledger)) and set(ledger) >= finished_before
    import pyarrow.parquet as pq

    digests = [d for path in (work_dir / "ray_shards").glob("shard-*.parquet")
               for d in pq.read_table(path, columns=["digest"]).column("digest").to_pylist()]
    assert len(digests) == len(set(digests))  # no request was answered twice


@pytest.mark.slow
def test_ctrl_c_on_a_ray_run_exits_130_within_seconds_frees_the_cluster_and_keeps_finished_shards(local_ray,
                                                                                                 tiny_model_dir,
                                                                                                 tmp_path):
    """One actor answers a wave of long requests one shard at a time, so the wave outlasts the interrupt by a
    minute or more (before, the interrupted run waited for it)."""
    address = local_ray.get_runtime_context().gcs_address  # the driver is interrupted, the cluster stays
    config = train_config(tmp_path, tiny_model_dir, {"kind": "ray", "max_batch_size": 1, "torch_threads": 1,
                                                     "ray": {"address": address, "concurrency": 1, "shard_size": 1}})
    raw = yaml.safe_load(config.read_text())
    raw["method"].update(max_in_flight=32)
    raw["method"]["generator"]["samples_per_instruction"] = 8
    raw["method"]["sampling"]["max_tokens"] = 1500
    config.write_text(yaml.safe_dump(raw))
    shards = tmp_path / "work" / "iter_1" / "ray_shards"
    command = [sys.executable, "-m", "harness.cli", "train", str(config)]
    log = tmp_path / "interrupted.log"
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                               stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        deadline = time.monotonic() + 240
        while not list(shards.glob("shard-*.parquet")):
            assert process.poll() is None and time.monotonic() < deadline, "no shard was finished to keep"
            time.sleep(0.1)
        finished = set(shards.glob("shard-*.parquet"))
        os.kill(process.pid, signal.SIGINT)
        interrupted = time.monotonic()
        assert process.wait(timeout=120) == 130, log.read_text()[-3000:]
        assert time.monotonic() - interrupted < 15
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert finished <= set(shards.glob("shard-*.parquet"))
    assert "Traceback" not in log.read_text()
    deadline = time.monotonic() + 15  # the job's actor is gone: the cluster has its CPUs back
    while local_ray.available_resources().get("CPU") != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert local_ray.available_resources().get("CPU") == 2


if __name__ == "__main__":  # the killed run of the test above, in its own process
    model_dir, seed_file, work, address = sys.argv[1:]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ray_synthesis(Path(model_dir), Path(seed_file), Path(work), address)
