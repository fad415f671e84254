"""Shared fixtures: the tiny test model, the benchmark data setting, the default real model, and
the two precisions every precision-dependent path is tested under."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.compute import PRECISION_ENV
from tasks.data import pin_data_dir_setting
from tests.tiny_model import build_tiny_model

PRECISIONS = ("fp32", "bf16")


def pytest_configure(config):
    # A relative setting means the folder pytest was started in, also for the CLIs tests start elsewhere.
    pin_data_dir_setting()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random-weight chat checkpoint built once per test session."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark files, from the SELFLENGTHEN_DATA_DIR setting (CI points it at ../shared/data)."""
    value = os.environ.get("SELFLENGTHEN_DATA_DIR")
    if not value:
        pytest.skip("SELFLENGTHEN_DATA_DIR is not set; point it at a folder holding the benchmark .jsonl files")
    path = Path(value)
    assert path.is_dir(), f"SELFLENGTHEN_DATA_DIR={value} is not a directory"
    return path


@pytest.fixture(scope="session")
def finished_experiment(tmp_path_factory, tiny_model_dir, data_dir) -> Path:
    """A finished tiny experiment with every arm (tests/finished_experiment.py), run once per session:
    a test copies it (`copy_finished`) and never changes it."""
    from tests.finished_experiment import finish

    return finish(tmp_path_factory.mktemp("finished"), tiny_model_dir, data_dir)


@pytest.fixture(params=PRECISIONS)
def forced_precision(request, monkeypatch) -> str:
    """Run the test once per precision on any CPU: `precision: auto` then means this one, here and in
    every child process (bf16 without AVX512-BF16 is emulated: slower, same code paths)."""
    monkeypatch.setenv(PRECISION_ENV, request.param)
    return request.param


def pytest_terminal_summary(terminalreporter):
    """Say how many precision-path tests passed under each precision, so a CI log shows both ran."""
    passed = terminalreporter.stats.get("passed", [])
    counts = {p: sum(1 for r in passed if f"[{p}" in r.nodeid or f"-{p}]" in r.nodeid) for p in PRECISIONS}
    if any(counts.values()):
        from infra.compute import cpu_computes_bf16

        native = "bf16" if cpu_computes_bf16() else "fp32"
        terminalreporter.write_line(
            f"precision paths: {counts['fp32']} passed under fp32, {counts['bf16']} under bf16 "
            f"(this CPU picks {native} for precision: auto)")


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray with 2 CPUs for one test module (the optional `ray` extra; skipped without it)."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
