"""Each stage's marker records its wall time, summed over an interrupted attempt and its resume."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.run.stages import DONE, TODO, Stage, recorded


def a_stage(tmp_path: Path, settings: dict | None = None) -> Stage:
    return Stage(name="arm/train", kind="train", model="m", backend=None, concurrency=None, sampling=None,
                 output=tmp_path, marker=tmp_path / "stage.json", inputs={"kind": "train", **(settings or {})})


def test_a_finished_stage_records_its_wall_seconds(tmp_path):
    stage = a_stage(tmp_path)
    assert stage.seconds is None
    with recorded([stage]):
        time.sleep(0.2)
    assert stage.status == DONE
    assert 0.2 <= stage.seconds < 5
    assert stage.as_json()["seconds"] == stage.seconds


def test_a_resumed_stage_adds_the_interrupted_attempts_seconds(tmp_path):
    stage = a_stage(tmp_path)
    with pytest.raises(KeyboardInterrupt), recorded([stage]):
        time.sleep(0.2)
        raise KeyboardInterrupt
    assert stage.status == TODO
    interrupted = stage.seconds
    assert interrupted >= 0.2
    with recorded([stage]):
        time.sleep(0.2)
    assert stage.status == DONE
    assert stage.seconds >= interrupted + 0.2


def test_a_stage_with_changed_settings_reports_no_seconds_of_the_old_one(tmp_path):
    with recorded([a_stage(tmp_path)]):
        pass
    assert a_stage(tmp_path, {"lr": 1}).seconds is None
