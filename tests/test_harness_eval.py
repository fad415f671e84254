"""`selflengthen eval` end to end: a real server, lm-eval, the published scores; a re-run resumes."""

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


def test_eval_serves_generates_scores_and_a_rerun_sends_no_request_again(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    args = ("--model", str(tiny_model_dir), "--tasks", "longbench_write_en_mini,longen_mini", "--limit", "2",
            "--max-gen-toks", "16", "--num-concurrent", "2", "--data-dir", str(data_dir), "--out", str(out))
    first = run_eval(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["tasks"]) == {"longbench_write_en_mini", "longen_mini"}
    longbench = scores["tasks"]["longbench_write_en_mini"]
    assert longbench["n"] == 2 and 0 <= longbench["S_l"] <= 100
    assert longbench["S_l"] == pytest.approx(sum(s["score"] for s in longbench["samples"]) / 2)
    assert {"overall", "about", "range", "above", "below"} <= set(scores["tasks"]["longen_mini"])
    samples = [json.loads(l) for l in (out / "lm_eval" / "samples_longen_mini.jsonl").read_text().splitlines()]
    assert [s["filtered_resps"][0] for s in samples] == [s["response"] for s in scores["tasks"]["longen_mini"]["samples"]]
    assert "S_l=" in first.stdout and "longen_mini" in first.stdout

    second = run_eval(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    second_server_log = (out / "server.log").read_text().split("$ ")[-1]
    assert "POST /v1/chat/completions" not in second_server_log
    assert json.loads((out / "scores.json").read_text())["tasks"] == scores["tasks"]
