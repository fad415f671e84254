"""Ctrl-C or SIGTERM while `run` judges: exit 130 within seconds (the judging threads are cancelled, not
waited for), a consistent judge cache, and a re-run that resumes from it. A real `selflengthen run` of
the base arm, judged through a slow plain endpoint (tests/plain_endpoint.py: fault injection)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.plain_endpoint import start_plain_endpoint, stats

pytestmark = pytest.mark.slow

SAMPLES = 2
DELAY = 3.0


def experiment(tmp_path: Path, model: Path, data_dir: Path, judge_url: str) -> Path:
    config = {
        "model": str(model), "out_dir": str(tmp_path / "exp"), "data_dir": str(data_dir),
        "tasks": ["longbench_write_en_mini"], "limit": SAMPLES,
        "eval": {"backend": "hf", "num_concurrent": 1, "max_gen_toks": 8},
        "arms": {"base": True, "self_lengthen": False, "backtranslation": False, "imitation": False},
        "backtranslation": {"corpus": str(data_dir / "federalist.jsonl")},
        "judge": {"model": "plain-judge", "endpoint": judge_url, "max_concurrency": 1, "max_retries": 0,
                  "sanity_subset": SAMPLES},
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_run(config: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    env.pop("SELFLENGTHEN_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, preexec_fn=ctrl_c_reaches_it)


def ctrl_c_reaches_it() -> None:
    """The run stands for one in a terminal. Started under a shell without job control (`cmd &` in a
    script, as a CI runner may start pytest) it would inherit SIGINT ignored and keep it so, as Unix
    background jobs do, and never see the SIGINT case's signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cached_replies(cache: Path) -> int:
    with sqlite3.connect(cache) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_while_judging_exits_130_within_seconds_and_a_rerun_resumes(tmp_path, tiny_model_dir,
                                                                                data_dir, stop):
    run = tmp_path / "exp" / "runs" / "base"
    with start_plain_endpoint("--delay", str(DELAY)) as slow:
        config = experiment(tmp_path, tiny_model_dir, data_dir, slow)
        process = start_run(config, tmp_path)
        deadline = time.monotonic() + 600
        while stats(slow)["answered"] < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # two replies cached, the third one in flight
        assert process.poll() is None, process.communicate()[1][-3000:]
        process.send_signal(stop)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=120)
        took = time.monotonic() - sent
        requested = stats(slow)["requests"]
    assert process.returncode == 130, stderr[-3000:]
    assert took < 2 * DELAY, f"exit {took:.1f}s after the signal"  # waiting for the judging took >= 3 DELAY
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert "fatal:" not in stderr  # lm-eval's git lookup, outside a repository
    assert not (run / "judgements.json").exists()
    marker_path = run / "judge.longbench_write_en_mini.stage.json"
    marker = json.loads(marker_path.read_text(encoding="utf-8"))
    assert marker["finished"] is False
    cached = cached_replies(run / "judge_cache.sqlite")
    assert cached >= 1  # the second reply may have been in transit

    with start_plain_endpoint() as fast:
        rerun = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(experiment(
            tmp_path, tiny_model_dir, data_dir, fast))], capture_output=True, text=True, cwd=tmp_path, timeout=600,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        resumed = stats(fast)["requests"]
    total = cached_replies(run / "judge_cache.sqlite")
    assert resumed == total - cached > 0  # the cached replies were not asked for again
    assert requested < total  # the interrupted run stopped judging, it did not finish it
    assert json.loads(marker_path.read_text(encoding="utf-8"))["finished"] is True
    judgements = json.loads((run / "judgements.json").read_text(encoding="utf-8"))
    assert judgements["tasks"]["longbench_write_en_mini"]["S_q"] == 75.0
