"""The judge with its default settings scores well-formed replies from an endpoint that returns no
logprobs (and ignores or refuses the JSON schema): each score falls back to the parsed reply, and
judgements.json and the summary line say how many did. Against a real server process
(tests/plain_endpoint.py) through the real `selflengthen judge`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plain_endpoint import start_plain_endpoint, stats

pytestmark = pytest.mark.slow

TASK = "longbench_write_en_mini"


def run_dir(tmp_path: Path) -> Path:
    """A run directory with two answered LongBench-Write prompts."""
    samples = [{"doc_id": i, "prompt": f"Write {200 * (i + 1)} words about rivers.",
                "response": "Rivers carry water to the sea. " * 20 + "\n\nThey shape valleys. " * 5,
                "words": 130, "required_words": 200 * (i + 1), "score": 50.0, "type": "x", "language": "en"}
               for i in range(2)]
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "scores.json").write_text(json.dumps({"model": "m", "tasks": {TASK: {
        "task": TASK, "n": 2, "S_l": 50.0, "samples": samples}}}), encoding="utf-8")
    return folder


def judge(folder: Path, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "300"}
    env.pop("SELFLENGTHEN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "harness.cli", "judge", str(folder), "--endpoint", url,
                           "--judge-model", "plain-judge"], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("flags", [(), ("--refuse-schema",)], ids=["schema ignored", "schema refused with HTTP 400"])
def test_replies_without_logprobs_are_scored_from_their_parsed_text_and_counted(tmp_path, flags):
    folder = run_dir(tmp_path)
    with start_plain_endpoint(*flags) as url:
        result = judge(folder, url)
        served = stats(url)
    assert result.returncode == 0, result.stderr
    assert served["with_logprobs"] == served["requests"] > 0  # the defaults asked for logprobs every time
    judgements = json.loads((folder / "judgements.json").read_text(encoding="utf-8"))
    entry = judgements["tasks"][TASK]
    assert (entry["S_q"], entry["failures"], entry["without_logprobs"]) == (75.0, 0, 2)
    assert all(s["without_logprobs"] and s["weighted_dimensions"] == [] for s in entry["samples"])
    line = next(line for line in result.stderr.splitlines() if line.startswith(f"{TASK}: S_q="))
    assert line.startswith(f"{TASK}: S_q=75.0 over 2/2 judged (0 failures; 2 scored from the parsed reply "
                           "(the endpoint returned no logprobs))"), line
    refused = judgements["judge"]["schema_refused"]
    if flags:
        assert "HTTP 400" in refused and "refused the rubric's JSON schema" in result.stderr
    else:
        assert refused is None and served["with_schema"] == served["requests"]


def test_a_rerun_scores_the_cached_replies_the_same_way(tmp_path):
    folder = run_dir(tmp_path)
    with start_plain_endpoint() as url:
        assert judge(folder, url).returncode == 0
        first = json.loads((folder / "judgements.json").read_text(encoding="utf-8"))
        (folder / "judgements.json").unlink()
        sent = stats(url)["requests"]
        assert judge(folder, url).returncode == 0
        assert stats(url)["requests"] == sent  # every reply came from the judge cache
    again = json.loads((folder / "judgements.json").read_text(encoding="utf-8"))
    assert again["tasks"][TASK]["without_logprobs"] == first["tasks"][TASK]["without_logprobs"] == 2
