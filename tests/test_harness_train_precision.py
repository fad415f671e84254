"""A training stage's fingerprint holds the precision `auto` resolved to, so adapters are never reused across it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.run.experiment_config import load_experiment
from harness.run.plan import plan_stages
from infra.compute import PRECISION_ENV
from tests.test_harness_plan import finish_every_stage, tiny_config


def statuses(config: Path) -> dict[str, tuple[str, str]]:
    return {stage.name: (stage.kind, stage.status) for stage in plan_stages(load_experiment(config))[0]}


def test_a_run_planned_under_fp32_then_bf16_retrains_every_adapter_and_keeps_what_came_before(data_dir, tmp_path,
                                                                                                 monkeypatch):
    config = tiny_config(tmp_path, data_dir)  # precision: auto
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    finish_every_stage(config)
    assert {status for _, status in statuses(config).values()} == {"done"}
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    after = statuses(config)
    assert {status for kind, status in after.values() if kind == "train"} == {"stale"}  # every role, final, baselines
    untouched = {name for name, (_, status) in after.items() if status == "done"}
    assert untouched == {"self_lengthen/iter_1/synthesis", "backtranslation/data", "imitation/data",
                         "score/longbench_write_en_mini/base", "score/longen_mini/base",
                         "judge/longbench_write_en_mini/base", "judge/longen_mini/base"}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_an_explicit_precision_is_the_same_stage_as_auto_resolving_to_it(data_dir, tmp_path, monkeypatch, precision):
    (tmp_path / "auto").mkdir(), (tmp_path / "explicit").mkdir()
    auto = tiny_config(tmp_path / "auto", data_dir)
    explicit = tiny_config(tmp_path / "explicit", data_dir, self_lengthen__train__precision=precision)
    monkeypatch.setenv(PRECISION_ENV, precision)
    [auto_train, explicit_train] = [[s.fingerprint for s in plan_stages(load_experiment(c))[0] if s.kind == "train"
                                     and s.name.startswith("self_lengthen/")] for c in (auto, explicit)]
    assert auto_train == explicit_train
