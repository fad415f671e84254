"""A resumed synthesis reports what the whole iteration cost: requests, rejections and seconds summed over
the interrupted attempt and its resume, like its item counts (before, only the last attempt's)."""

from __future__ import annotations

import asyncio
import json

import pytest

from selflengthen.journaled_run import ATTEMPTS
from selflengthen.pipeline import RESULT_FILE, run_synthesis
from tests.fakes import ScriptedBackend, held_until
from tests.test_selflengthen_pipeline import SEEDS, tiny_config, write_seeds


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_resumed_synthesis_totals_requests_rejections_and_seconds_over_both_attempts(tmp_path):
    config = tiny_config(write_seeds(tmp_path / "seeds.jsonl"), max_in_flight=6,
                         self_instruct={"instructions_per_language": 0, "include_seeds": True})
    work = tmp_path / "iter_1"
    never = asyncio.Event()
    # Attempt 1: the last seed's answers hang until the attempt is interrupted; the others come back empty.
    hanging = ScriptedBackend(script=lambda text, sampling, n: held_until(never, "") if text == SEEDS[-1] else "")
    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(run_synthesis(hanging, hanging, config, work), timeout=1.0))
    assert not (work / RESULT_FILE).exists()
    first = lines(work / ATTEMPTS)
    assert len(first) == 1 and first[0]["requests"]["sent"] > 0 and first[0]["seconds"] >= 0.5

    resumed = ScriptedBackend("")
    result = asyncio.run(run_synthesis(resumed, resumed, config, work))
    attempts = lines(work / ATTEMPTS)
    assert len(attempts) == 2
    assert result.requests.sent == attempts[0]["requests"]["sent"] + attempts[1]["requests"]["sent"]
    assert result.requests.sent == len(lines(work / "requests.jsonl"))  # every reply ever received, once
    assert result.rejections["generate.empty"] == sum(a["rejections"]["generate.empty"] for a in attempts)
    assert result.seconds == pytest.approx(attempts[0]["seconds"] + attempts[1]["seconds"], abs=0.002)
    assert result.seconds >= first[0]["seconds"]
    assert json.loads((work / RESULT_FILE).read_text(encoding="utf-8"))["requests"]["sent"] == result.requests.sent
