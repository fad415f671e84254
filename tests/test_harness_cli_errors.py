"""Bad input: one line of error on stderr, a non-zero exit code, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    env.pop("SELFLENGTHEN_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def run_main(argv: list[str], capsys, monkeypatch, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`selflengthen ARGV` in this process: its exit code and output, as `run_cli` gives them, in milliseconds.

    For inputs refused before any work starts, where no process boundary is being tested.
    """
    from harness.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("SELFLENGTHEN_DEBUG", raising=False)
    if cwd is not None:
        monkeypatch.chdir(cwd)
    capsys.readouterr()
    sigterm = signal.getsignal(signal.SIGTERM)  # main() installs its own
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["selflengthen", *argv], code, captured.out, captured.err)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr, result.stderr


def test_score_missing_input_file(tmp_path):
    result = run_cli("score", "--task", "longen", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "s.json"))
    assert_one_line_error(result, "nope.jsonl")


def test_score_row_without_response_names_the_line(tmp_path):
    path = tmp_path / "preds.jsonl"
    row = {"prompt": "Write 100 words.", "type": "x", "length": 100}
    path.write_text(json.dumps({**row, "response": "ok."}) + "\n" + json.dumps(row) + "\n")
    result = run_cli("score", "--task", "longbench_write", "--input", str(path), "--output", str(tmp_path / "s.json"))
    assert_one_line_error(result, "response")
    assert "2" in result.stderr
    assert not (tmp_path / "s.json").exists()


def test_score_unknown_task(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps({"prompt": "p", "length": 100, "response": "r"}) + "\n")
    result = run_cli("score", "--task", "hellaswag", "--input", str(path), "--output", str(tmp_path / "s.json"))
    assert_one_line_error(result, "hellaswag")


def test_eval_malformed_yaml_config(tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text("tasks: [longen_mini\nlimit: 2\n")
    result = run_cli("eval", "--config", str(config), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "malformed YAML")


def test_eval_unknown_config_field(tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text("modle: x\n")
    result = run_cli("eval", "--config", str(config), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "unknown field 'modle'")


def test_eval_unknown_task(tmp_path):
    result = run_cli("eval", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--tasks", "no_such_task", "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "unknown task 'no_such_task'")


@pytest.mark.slow
def test_eval_unreachable_endpoint(tmp_path, data_dir):
    result = run_cli(
        "eval", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--tasks", "longbench_write_en_mini",
        "--limit", "1", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"),
    )
    assert_one_line_error(result, "127.0.0.1:9")
