"""The third red-team pass (issue 36): settings that `run --plan` and `run` took (exit 0) and that failed or
misbehaved later are refused before any work, with exit 2 and one `error:` line naming them.

The precision setting (and `train` with it), an empty Ray address, a data-parallel size set twice, a
constrained judge whose yes and no overlap, a negative server timeout or batch size, a task YAML whose
primary metric the task does not report, every arm switched off, a judged quality above 100, and an eval
limit no benchmark comes near. All are refused before any work, so they run in this process.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from infra.compute import PRECISION_ENV
from tests.leaderboard_runs import MODELS, make_run_dir
from tests.test_harness_cli_errors import assert_one_line_error, run_main

ARMS_OFF = {"base": False, "self_lengthen": False, "backtranslation": False, "imitation": False}


@dataclass
class BadInput:
    """One row of the table: the config changes (or a whole command line), what the error must name, and the
    environment the command runs in."""

    name: str
    changes: dict | Callable[[Path], list[str]]
    names: str
    env: dict[str, str] = field(default_factory=dict)


def experiment(tmp: Path, data_dir: Path, changes: dict) -> str:
    """An experiment on a stand-in model folder: the base arm alone, unjudged, unless `changes` say otherwise."""
    raw = {"model": str(tmp), "out_dir": str(tmp / "out"), "data_dir": str(data_dir), "judge_enabled": False,
           "tasks": ["longbench_write_en_mini"], "arms": {**ARMS_OFF, "base": True}}
    for key, value in changes.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) else value
    path = tmp / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


SELF_LENGTHEN = {**ARMS_OFF, "self_lengthen": True}
BACKTRANSLATION = {"arms": {**ARMS_OFF, "backtranslation": True},
                   "backtranslation": {"corpus": "${SELFLENGTHEN_DATA_DIR}/federalist.jsonl"}}
VLLM_EVAL = {"kind": "vllm", "data_parallel_size": 2}

EXPERIMENT_CASES = [
    BadInput("SELFLENGTHEN_PRECISION=garbage", {}, "SELFLENGTHEN_PRECISION must be 'bf16' or 'fp32', got 'garbage'",
             {PRECISION_ENV: "garbage"}),
    BadInput("an empty backend.ray.address", {"arms": SELF_LENGTHEN, "backend": {"kind": "ray", "ray": {"address": ""}}},
             "ray.address"),
    BadInput("data_parallel_size and -dp=2", {"eval": {"server": {**VLLM_EVAL, "extra_args": ["-dp=2"]}}},
             "extra_args sets --data-parallel-size"),
    BadInput("data_parallel_size and --data_parallel_size", {"eval": {"server": {
        **VLLM_EVAL, "extra_args": ["--data_parallel_size", "2"]}}}, "extra_args sets --data-parallel-size"),
    BadInput("a constrained judge whose yes and no overlap", {"arms": SELF_LENGTHEN, "self_lengthen": {"self_instruct": {
        "constrained_judge": True, "yes_answers": {"en": ["yes", "No."]}}}}, "self_instruct: no_answers.en repeats yes_answers.en (no, "),
    BadInput("a negative eval.server.startup_timeout", {"eval": {"server": {"startup_timeout": -5}}}, "startup_timeout"),
    BadInput("a negative backend.max_batch_size", {**BACKTRANSLATION, "backend": {"max_batch_size": -1}},
             "max_batch_size"),
    BadInput("a negative eval.server.max_batch_size", {"eval": {"server": {"kind": "inprocess", "max_batch_size": -1}}},
             "max_batch_size"),
    BadInput("every arm switched off", {"arms": ARMS_OFF}, "every arm is switched off"),
]


@pytest.mark.parametrize("plan", [True, False], ids=["run --plan", "run"])
@pytest.mark.parametrize("case", EXPERIMENT_CASES, ids=[c.name for c in EXPERIMENT_CASES])
def test_an_experiment_setting_that_would_fail_later_is_refused_before_any_work(case, plan, data_dir, tmp_path,
                                                                              capsys, monkeypatch):
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    argv = ["run", experiment(tmp_path, data_dir, case.changes), *(["--plan"] if plan else [])]
    result = run_main(argv, capsys, monkeypatch, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, case.names)
    assert not (tmp_path / "out").exists()


def test_train_with_a_garbage_precision_is_refused_before_any_stage_starts(tmp_path, capsys, monkeypatch):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"prompt": "Write a story."}\n{"prompt": "Write an essay."}\n', encoding="utf-8")
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"model": str(tmp_path), "method": {
        "work_dir": str(tmp_path / "work"), "languages": ["en"], "seed_files": {"en": str(seeds)}}}), encoding="utf-8")
    monkeypatch.setenv(PRECISION_ENV, "bf17")
    result = run_main(["train", str(config)], capsys, monkeypatch, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, "SELFLENGTHEN_PRECISION must be 'bf16' or 'fp32', got 'bf17'")
    assert not (tmp_path / "work").exists()  # no unfinished stage marker


@pytest.mark.parametrize("command", [["eval", "--model", "smollm2-135m", "--tasks", "longbench_write_en_mini",
                                      "--out", "out"], ["judge", "out"], ["serve", "smollm2-135m"]],
                         ids=["eval", "judge", "serve"])
def test_every_command_refuses_a_garbage_precision_before_any_work(command, tmp_path, capsys, monkeypatch):
    """Not only `run` and `train`: `eval` had run to the end with SELFLENGTHEN_PRECISION=bogus (exit 0)."""
    monkeypatch.setenv(PRECISION_ENV, "bogus")
    result = run_main(command, capsys, monkeypatch, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, "SELFLENGTHEN_PRECISION must be 'bf16' or 'fp32', got 'bogus'")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def task_yaml_reporting_no_s_q(tmp_path, monkeypatch):
    """The task folder with longbench_write_en_mini declaring `S_q` (a judge's metric, not the task's) primary."""
    import tasks.metadata

    copy = tmp_path / "tasks"
    shutil.copytree(tasks.metadata.TASKS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    mini = copy / "longbench_write" / "longbench_write_en_mini.yaml"
    mini.write_text(mini.read_text(encoding="utf-8").replace("primary_metric: S_l", "primary_metric: S_q"),
                    encoding="utf-8")
    monkeypatch.setattr(tasks.metadata, "TASKS_DIR", copy)
    tasks.metadata.task_config.cache_clear()
    yield
    tasks.metadata.task_config.cache_clear()


@pytest.mark.parametrize("plan", [True, False], ids=["run --plan", "run"])
def test_a_primary_metric_the_task_does_not_report_is_refused_by_run(task_yaml_reporting_no_s_q, plan, data_dir,
                                                                    tmp_path, capsys, monkeypatch):
    argv = ["run", experiment(tmp_path, data_dir, {}), *(["--plan"] if plan else [])]
    result = run_main(argv, capsys, monkeypatch, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, "longbench_write_en_mini.yaml: metadata.primary_metric 'S_q' is not in its metric_list")


def test_a_primary_metric_the_task_does_not_report_is_refused_by_score(task_yaml_reporting_no_s_q, tmp_path, capsys,
                                                                      monkeypatch):
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"prompt": "Write 100 words.", "length": 100, "response": "hi"}) + "\n",
                     encoding="utf-8")
    argv = ["score", "--task", "longbench_write_en_mini", "--input", str(preds), "--output", str(tmp_path / "s.json")]
    result = run_main(argv, capsys, monkeypatch, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, "metadata.primary_metric 'S_q' is not in its metric_list")
    assert not (tmp_path / "s.json").exists()


def test_an_eval_limit_of_10_to_the_20_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    argv = ["eval", "--model", str(tmp_path), "--tasks", "longbench_write_en_mini", "--limit", str(10**20),
            "--out", str(tmp_path / "run")]
    result = run_main(argv, capsys, monkeypatch, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, "eval.limit must be at most")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("quality", [150.0, -0.5])
def test_a_judged_quality_off_the_0_to_100_scale_is_refused_by_leaderboard(quality, tmp_path, capsys, monkeypatch):
    run = make_run_dir(tmp_path / "runs", *MODELS[1][:6], seed=1)
    document = json.loads((run / "judgements.json").read_text(encoding="utf-8"))
    document["tasks"]["longbench_write_en_mini"]["samples"][0]["quality"] = quality
    (run / "judgements.json").write_text(json.dumps(document), encoding="utf-8")
    result = run_main(["leaderboard", str(run), "--out", str(tmp_path / "board")], capsys, monkeypatch)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, "judgements.json: tasks['longbench_write_en_mini'].samples[0].quality must be "
                                  "a number from 0 to 100")
    assert not (tmp_path / "board").exists()
