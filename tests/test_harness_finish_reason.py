"""`selflengthen eval` marks an answer cut by the token cap in its sample record, and a resumed eval keeps it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def run_eval(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "harness.cli", "eval", *args],
                          capture_output=True, text=True, env=env, timeout=900)


def test_an_answer_cut_by_a_small_token_cap_is_marked_ended_at_cap_and_stays_so_on_resume(
        tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    args = ("--model", str(tiny_model_dir), "--serve", "inprocess", "--tasks", "longbench_write_en_mini",
            "--limit", "2", "--max-gen-toks", "8", "--num-concurrent", "2", "--data-dir", str(data_dir),
            "--out", str(out))
    first = run_eval(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    task = json.loads((out / "scores.json").read_text())["tasks"]["longbench_write_en_mini"]
    assert [(s["finish_reason"], s["ended_at_cap"]) for s in task["samples"]] == [("length", True)] * 2
    assert task["ended_at_cap"] == 1.0
    logged = [json.loads(line) for line in (out / "lm_eval" / "samples_longbench_write_en_mini.jsonl")
              .read_text().splitlines()]
    assert [s["finish_reason"] for s in logged] == ["length", "length"]

    second = run_eval(*args)  # every answer from lm-eval's request cache: the finish reasons come back with them
    assert second.returncode == 0, second.stderr[-3000:]
    assert "POST /v1/chat/completions" not in (out / "server.log").read_text().split("$ ")[-1]
    again = json.loads((out / "scores.json").read_text())["tasks"]["longbench_write_en_mini"]
    assert [s["ended_at_cap"] for s in again["samples"]] == [True, True]
