"""`selflengthen run`: every arm trained, scored, judged and ranked; a re-run does nothing twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.1, "max_tokens": 12}
UNCAPPED = {k: v for k, v in SAMPLING.items() if k != "max_tokens"}  # backtranslation: per-request lengths
TRAIN = {"max_steps": 1, "warmup_ratio": 0.0, "logging_steps": 1, "max_length": 2048, "torch_threads": 1}


def experiment(tmp_path: Path, model: Path, data_dir: Path) -> Path:
    """All arms on the tiny random model; it writes noise, so the filters accept any ending."""
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": f"Write a long essay about topic {i}."}) + "\n" for i in range(3)))
    config = {
        "model": str(model),
        "out_dir": str(tmp_path / "exp"),
        "data_dir": str(data_dir),
        "tasks": ["longbench_write_en_mini"],
        "limit": 2,
        "eval": {"num_concurrent": 2, "max_gen_toks": 16, "server": {"torch_threads": 1}},
        "backend": {"kind": "inprocess", "max_batch_size": 8},
        "self_lengthen": {
            "iterations": 1, "seed_files": {"en": str(seeds)}, "max_in_flight": 4, "sampling": SAMPLING,
            "self_instruct": {"instructions_per_language": 1, "max_attempts": 2, "include_seeds": True},
            "generator": {"samples_per_instruction": 2, "max_attempts": 1},
            "extender": {"extensions_per_answer": 1, "max_attempts": 2, "rounds": 2, "min_growth": 1.0},
            "filters": {"terminal_punctuation": [""], "drop_short": False},
            "final_data": {"min_words": 1},
            "train": TRAIN,
        },
        "backtranslation": {
            "corpus": str(data_dir / "federalist.jsonl"), "max_documents": 2, "shown_words": 40,
            "instruction_min_words": 1, "instruction_max_tokens": 12, "min_rating": None,
            "tokenizer": str(model), "sampling": UNCAPPED, "train": TRAIN,
        },
        "imitation": {"max_instructions": 1, "plan_attempts": 1, "plan_max_tokens": 16, "sampling": SAMPLING,
                      "train": TRAIN},
        "judge": {"model": str(model), "max_tokens": 16, "max_retries": 0, "server": {"torch_threads": 1}},
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", str(config)],
                          capture_output=True, text=True, env=env, timeout=1500)


def test_run_trains_scores_judges_and_ranks_every_arm_then_resumes_without_work(tiny_model_dir, data_dir, tmp_path):
    config = experiment(tmp_path, tiny_model_dir, data_dir)
    first = run(config)
    assert first.returncode == 0, first.stderr[-4000:]
    out = tmp_path / "exp"
    summary = json.loads((out / "experiment.json").read_text())
    names = [c["name"] for c in summary["checkpoints"]]
    assert names == ["base", "self_lengthen/iter_1/generator", "backtranslation"]
    # The random tiny teacher never writes a usable plan: the arm is skipped with the reason, not faked.
    assert "no training sample" in summary["skipped"]["imitation"]
    for name in names:
        run_dir = out / "runs" / name.replace("/", "-")
        scores = json.loads((run_dir / "scores.json").read_text())
        assert scores["tasks"]["longbench_write_en_mini"]["n"] == 2
        judged = json.loads((run_dir / "judgements.json").read_text())["tasks"]["longbench_write_en_mini"]
        assert judged["n"] == 2 and judged["failures"] + sum(s["quality"] is not None for s in judged["samples"]) == 2
        assert json.loads((run_dir / "run.json").read_text())["model"] == name
    board = json.loads((out / "leaderboard" / "leaderboard.json").read_text())
    assert sorted(row["model"] for row in board["rows"]) == sorted(names)
    assert "backtranslation" in (out / "leaderboard" / "leaderboard.md").read_text()

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*.json")}
    second = run(config)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "scoring" not in second.stderr and "judging" not in second.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*.json")} == stamps
