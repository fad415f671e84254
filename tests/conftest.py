"""Shared fixtures: the tiny test model, the benchmark data setting, the default real model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tiny_model import build_tiny_model


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
