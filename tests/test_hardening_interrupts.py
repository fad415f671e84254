"""Interrupts: SIGTERM (the Ctrl-C path) ends a run with "interrupted", exit 130 and consistent journals."""

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

from infra.inprocess import InProcessBackend, InProcessConfig
from infra.sampling import SamplingConfig

LONG = SamplingConfig(max_tokens=400)


@pytest.fixture
def thread_errors(monkeypatch) -> list[BaseException]:
    """Exceptions that escaped any thread during the test."""
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def _abandon_a_request(backend: InProcessBackend) -> None:
    """Like an interrupted `asyncio.run`: the caller stops waiting and its loop closes mid-decode."""
    async def go():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(backend.complete("The river", LONG), timeout=0.3)

    asyncio.run(go())


def one_token_a_step(model) -> InProcessConfig:
    """No speculative drafts: with them the tiny model's looping answer can finish inside the 0.3 s that
    `_abandon_a_request` waits, and nothing would be abandoned."""
    return InProcessConfig(model, torch_threads=1, speculative_tokens=0)


def test_closing_the_backend_after_its_callers_loop_closed_does_not_raise(tiny_model_dir, thread_errors):
    with InProcessBackend(one_token_a_step(tiny_model_dir)) as backend:
        _abandon_a_request(backend)
    assert thread_errors == []


def test_a_request_finishing_after_its_loop_closed_does_not_kill_the_worker(tiny_model_dir, thread_errors):
    with InProcessBackend(one_token_a_step(tiny_model_dir)) as backend:
        _abandon_a_request(backend)
        deadline = time.monotonic() + 60
        while backend.stats.cancelled < 1 and time.monotonic() < deadline:
            time.sleep(0.1)  # the abandoned row leaves the batch at the next step, its loop already closed
        time.sleep(0.5)
        answer = asyncio.run(asyncio.wait_for(backend.complete("The river", SamplingConfig(max_tokens=4)), 60))
    assert thread_errors == []
    assert answer.completion_tokens == 4


SEEDS = [f"Write a long essay number {i} about the river and the people who live near it." for i in range(6)]


def _train_config(tmp_path: Path, model: Path) -> Path:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": s}) + "\n" for s in SEEDS))
    config = {
        "model": str(model),
        "backend": {"kind": "inprocess", "max_batch_size": 8, "torch_threads": 1},
        "method": {
            "iterations": 1, "languages": ["en"], "seed_files": {"en": str(seeds)},
            "work_dir": str(tmp_path / "work"), "max_in_flight": 8,
            "sampling": {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.1, "max_tokens": 400},
            "self_instruct": {"instructions_per_language": 6, "max_attempts": 2, "include_seeds": True},
            "generator": {"samples_per_instruction": 2, "max_attempts": 2},
            "extender": {"extensions_per_answer": 1, "max_attempts": 2, "rounds": 2, "min_growth": 1.0},
            "filters": {"terminal_punctuation": [""], "drop_short": False},
            "final_data": {"min_words": 1},
            "train": {"max_steps": 1, "warmup_ratio": 0.0, "logging_steps": 1, "max_length": 2048, "torch_threads": 1},
        },
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_sigterm_during_in_process_synthesis_exits_130_with_consistent_journals(tiny_model_dir, tmp_path):
    config = _train_config(tmp_path, tiny_model_dir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("SELFLENGTHEN_DEBUG", None)
    process = subprocess.Popen([sys.executable, "-m", "harness.cli", "train", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ledger = tmp_path / "work" / "iter_1" / "requests.jsonl"
    deadline = time.monotonic() + 300
    while not (ledger.is_file() and ledger.stat().st_size) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)  # requests are being answered: the decode worker is busy
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr and "Event loop is closed" not in stderr, stderr
    iteration = tmp_path / "work" / "iter_1"
    assert not (iteration / "synthesis.json").exists()
    for journal in iteration.glob("*.jsonl"):
        records = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
        assert not any(r.get("abandoned") for r in records), journal
