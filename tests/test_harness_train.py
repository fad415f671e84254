"""`selflengthen train`: one full Self-Lengthen iteration and the final model on the tiny model, both synthesis
backends; a re-run redoes only what a changed setting made stale."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.serving.client import EndpointClient
from harness.serving.serve import ServerConfig, serve
from infra.sampling import SamplingConfig

pytestmark = pytest.mark.slow

SEEDS = [
    "Write a long essay about the history of the river and the people who live near it.",
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Write a detailed guide to keeping bees through a cold winter.",
]


def train_config(tmp_path: Path, model: Path, backend: dict) -> Path:
    """One small iteration. The tiny model writes noise, so the punctuation rule accepts any ending."""
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": s}) + "\n" for s in SEEDS))
    config = {
        "model": str(model),
        "backend": backend,
        "method": {
            "iterations": 1,
            "languages": ["en"],
            "seed_files": {"en": str(seeds)},
            "work_dir": str(tmp_path / "work"),
            "max_in_flight": 4,
            "sampling": {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.1, "max_tokens": 12},
            "self_instruct": {"instructions_per_language": 1, "max_attempts": 2, "include_seeds": True},
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


def run_train(config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "harness.cli", "train", str(config)],
                          capture_output=True, text=True, env=env, timeout=1200)


def check_iteration_artifacts(work: Path) -> dict:
    it = work / "iter_1"
    synthesis = json.loads((it / "synthesis.json").read_text())
    generator_rows = [json.loads(l) for l in (it / "generator_data.jsonl").read_text().splitlines()]
    extender_rows = [json.loads(l) for l in (it / "extender_data.jsonl").read_text().splitlines()]
    assert synthesis["generator_examples"] == len(generator_rows) > 0
    assert synthesis["extender_examples"] == len(extender_rows) > 0
    assert all([m["role"] for m in row["messages"]] == ["user", "assistant"] for row in generator_rows)
    for role in ("generator", "extender"):
        stats = json.loads((it / f"{role}_adapter" / "train_stats.json").read_text())
        assert stats["steps"] == 1 and stats["samples"] == synthesis[f"{role}_examples"]
        assert (it / f"{role}_adapter" / "adapter_config.json").is_file()
    checkpoints = json.loads((work / "checkpoints.json").read_text())
    assert [c["name"] for c in checkpoints] == ["iter_1/generator", "final"]
    assert all(Path(c["path"], "config.json").is_file() for c in checkpoints)
    final_rows = (work / "final" / "final_data.jsonl").read_text().splitlines()
    assert checkpoints[1]["train_stats"]["samples"] == len(final_rows) > 0
    return checkpoints[0]


def test_one_iteration_in_process_trains_both_roles_and_serves_the_generator(tiny_model_dir, tmp_path):
    config = train_config(tmp_path, tiny_model_dir, {"kind": "inprocess", "max_batch_size": 8})
    result = run_train(config)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = check_iteration_artifacts(tmp_path / "work")
    assert "iter_1/generator" in result.stderr + result.stdout

    with serve(checkpoint["path"], ServerConfig(torch_threads=1), log_path=tmp_path / "served.log") as endpoint:
        async def ask():
            client = EndpointClient(endpoint)
            try:
                return await client.chat([{"role": "user", "content": SEEDS[0]}], SamplingConfig(max_tokens=8))
            finally:
                await client.close()

        answer = asyncio.run(ask())
    assert answer.completion_tokens and answer.completion_tokens <= 8

    rerun = run_train(config)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "fine-tuning" not in rerun.stderr and json.loads((tmp_path / "work" / "checkpoints.json").read_text())


def test_a_changed_training_setting_retrains_the_adapters_and_the_final_model_but_keeps_the_synthesis(
        tiny_model_dir, tmp_path):
    config = train_config(tmp_path, tiny_model_dir, {"kind": "inprocess", "max_batch_size": 8})
    first = run_train(config)
    assert first.returncode == 0, first.stderr[-3000:]
    synthesis = tmp_path / "work" / "iter_1" / "synthesis.json"
    written = synthesis.stat().st_mtime_ns
    raw = yaml.safe_load(config.read_text())
    raw["method"]["train"]["learning_rate"] = 3e-3
    config.write_text(yaml.safe_dump(raw))
    rerun = run_train(config)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    stale = {line.split(": stale")[0].strip() for line in rerun.stderr.splitlines() if ": stale" in line}
    assert stale == {"self_lengthen/iter_1/train_generator", "self_lengthen/iter_1/train_extender",
                     "self_lengthen/final/train"}
    assert synthesis.stat().st_mtime_ns == written
    for adapter in ("iter_1/generator_adapter", "iter_1/extender_adapter", "final/adapter"):
        stats = json.loads((tmp_path / "work" / adapter / "train_stats.json").read_text())
        assert stats["config"]["learning_rate"] == 3e-3, adapter


def test_one_iteration_through_transformers_serve(tiny_model_dir, tmp_path):
    # Without continuous batching: with it, transformers serve drops repetition_penalty, which is refused.
    backend = {"kind": "endpoint", "server": {"kind": "transformers", "torch_threads": 1, "continuous_batching": False}}
    result = run_train(train_config(tmp_path, tiny_model_dir, backend))
    assert result.returncode == 0, result.stderr[-3000:]
    check_iteration_artifacts(tmp_path / "work")
    assert "POST /v1/completions" in (tmp_path / "work" / "iter_1" / "generator_server.log").read_text()


def test_config_with_a_misspelt_field_fails_at_load_naming_it(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("method:\n  iteratons: 2\n")
    result = run_train(path)
    assert result.returncode == 2
    assert "unknown field 'iteratons' in train.yaml.method" in result.stderr


def test_an_iteration_that_keeps_no_pair_stops_the_iterations_and_the_final_model_saying_why(tiny_model_dir,
                                                                                          tmp_path):
    config = train_config(tmp_path, tiny_model_dir, {"kind": "inprocess", "max_batch_size": 8})
    raw = yaml.safe_load(config.read_text())
    raw["method"]["iterations"] = 2
    raw["method"]["extender"]["min_growth"] = 1000.0  # no extension grows a thousandfold: no pair is kept
    config.write_text(yaml.safe_dump(raw))
    result = run_train(config)
    assert result.returncode != 0
    assert "stopped after 0 iteration(s): iteration 1 kept no generator training pairs" in " ".join(result.stderr.split())
    work = tmp_path / "work"
    assert (work / "iter_1" / "synthesis.json").is_file()  # the synthesis ran; nothing after it did
    assert not any((work / "iter_1").glob("*_adapter")) and not (work / "iter_2").exists()
    assert not (work / "final").exists() and json.loads((work / "checkpoints.json").read_text()) == []
