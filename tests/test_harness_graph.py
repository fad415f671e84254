"""The run is its graph (#37): each stage one object with its upstream, fingerprint and run; `--plan` prints the
objects' status and `run` executes the same objects, so a stage added in one place is planned, run and
fingerprinted without a second description to keep in step.

The executor's rules are pinned on stages whose work is a list append; the end-to-end test adds an arm to a
real experiment on the tiny model (scored in process by lm-eval, ranked on the leaderboard).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import yaml
from rich.console import Console

import harness.run.plan
from harness.run.execute import execute
from harness.run.experiment import run_experiment
from harness.run.experiment_config import load_experiment
from harness.run.plan import Graph, plan_stages, print_plan
from harness.run.stages import DONE, STALE, TODO, JsonEntry, PlannedCheckpoint, Stage, recorded

ROOT = Path(__file__).resolve().parent.parent
TASK = "longbench_write_en_mini"


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def a_stage(folder: Path, name: str, upstream: list[Stage] | None = None, **fields) -> Stage:
    """A stage whose output is a file holding its name."""
    out = folder / name.replace("/", "-")
    return Stage(name, "test", "-", None, None, None, out, out / "stage.json", {"kind": "test", "name": name},
                 [out / "done.txt"], upstream=upstream or [], **fields)


def writes(calls: list[list[str]]):
    """A run that records which stages one call was given and writes their outputs."""
    def run(stages: list[Stage], console: Console) -> None:
        calls.append([stage.name for stage in stages])
        for stage in stages:
            stage.output.mkdir(parents=True, exist_ok=True)
            (stage.output / "done.txt").write_text(stage.name)
    return run


def test_stages_sharing_a_run_are_run_by_one_call_with_those_not_done(tmp_path):
    calls: list[list[str]] = []
    shared = writes(calls)
    first = a_stage(tmp_path, "a", run=writes(calls))
    tasks = [a_stage(tmp_path, f"score/{task}", [first], run=shared) for task in ("t1", "t2", "t3")]
    with recorded([tasks[1]]):  # t2 was scored before
        (tasks[1].output).mkdir(parents=True, exist_ok=True)
    execute([first, *tasks], quiet())
    assert calls == [["a"], ["score/t1", "score/t3"]]
    assert {stage.status for stage in [first, *tasks]} == {DONE}
    execute([first, *tasks], quiet())  # all done: nothing runs
    assert len(calls) == 2


def test_a_skipped_stage_skips_everything_downstream_and_the_first_reason_given_is_kept(tmp_path):
    calls: list[list[str]] = []
    data = a_stage(tmp_path, "arm/data", run=writes(calls))
    train = a_stage(tmp_path, "arm/train", [data], run=writes(calls), skip=lambda: ("arm", "no training sample"))
    later = a_stage(tmp_path, "arm/later", [train], run=writes(calls), skip=lambda: ("arm", "a later reason"))
    score = a_stage(tmp_path, "score/arm", [later], run=writes(calls))
    other = a_stage(tmp_path, "other", [data], run=writes(calls))
    board = a_stage(tmp_path, "board", [score, other], run=writes(calls), after_skipped=True)
    console = Console(file=io.StringIO(), width=200)
    assert execute([data, train, later, score, other, board], console) == {"arm": "no training sample"}
    assert calls == [["arm/data"], ["other"], ["board"]]
    assert [stage.status for stage in (train, later, score)] == [TODO] * 3  # no marker: nothing ran
    assert console.file.getvalue().count("arm skipped: no training sample") == 1


def test_a_stage_listed_before_its_upstream_is_refused_before_it_runs(tmp_path):
    calls: list[list[str]] = []
    upstream = a_stage(tmp_path, "upstream", run=writes(calls))
    downstream = a_stage(tmp_path, "downstream", [upstream], run=writes(calls))
    with pytest.raises(RuntimeError, match="downstream would run before its upstream upstream is done"):
        execute([downstream, upstream], quiet())
    assert calls == []


def test_a_stale_stage_is_cleared_and_run_again_with_its_downstream(tmp_path):
    calls: list[list[str]] = []
    first = a_stage(tmp_path, "first", run=writes(calls))
    second = a_stage(tmp_path, "second", [first], run=writes(calls))
    execute([first, second], quiet())
    changed = Stage(**{**vars(first), "inputs": {**first.inputs, "setting": 2}})
    downstream = a_stage(tmp_path, "second", [changed], run=writes(calls))
    assert [changed.status, downstream.status] == [STALE, STALE]
    execute([changed, downstream], quiet())
    assert calls[2:] == [["first"], ["second"]]
    assert (tmp_path / "first" / "done.txt.stale").read_text() == "first"  # the old output kept aside


def test_every_stage_of_an_experiment_plan_has_what_runs_it(data_dir):
    for example in ("tiny.yaml", "gpu.yaml", "small.yaml"):
        stages, _ = plan_stages(load_experiment(ROOT / "examples" / example))
        assert [stage.name for stage in stages if stage.run is None] == [], example
        names = [stage.name for stage in stages]
        for stage in stages:  # upstream first, so `run` can execute the plan in its order
            assert all(up is None or names.index(up.name) < names.index(stage.name) for up in stage.upstream)


def experiment(tmp_path: Path, model: Path, data_dir: Path) -> Path:
    """The base arm alone, scored in process on one document, not judged."""
    raw = {"model": str(model), "out_dir": str(tmp_path / "exp"), "data_dir": str(data_dir), "tasks": [TASK],
           "limit": 1, "arms": {"self_lengthen": False, "backtranslation": False, "imitation": False},
           "judge_enabled": False,
           "eval": {"backend": "hf", "num_concurrent": 1, "max_gen_toks": 8, "sampling": {"temperature": 0.0}}}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def copy_arm(note: str):
    """An arm whose one stage copies the base model: its checkpoint is scored and ranked like any other."""
    def add(config, graph: Graph) -> None:
        folder = Path(config.out_dir) / "train" / "copy"

        def run(stages: list[Stage], console: Console) -> None:
            shutil.copytree(config.model, folder / "model", dirs_exist_ok=True)

        stage = Stage("copy/model", "copy", config.model, None, None, None, folder, folder / "stage.json",
                      {"kind": "copy", "model": config.model, "settings": {"note": note}}, [folder / "model"], run=run)
        graph.stages.append(stage)
        graph.checkpoints.append(PlannedCheckpoint("copy", str(folder / "model"), "copy", None, stage))
    return add


@pytest.mark.slow
def test_an_arm_added_in_one_place_is_planned_run_scored_ranked_and_fingerprinted(tiny_model_dir, data_dir, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = experiment(tmp_path, tiny_model_dir, data_dir)
    monkeypatch.setattr(harness.run.plan, "ARMS", (*harness.run.plan.ARMS, copy_arm("first")))
    config = load_experiment(path)

    stages = {stage.name: stage for stage in plan_stages(config)[0]}
    assert list(stages) == ["copy/model", f"score/{TASK}/base", f"score/{TASK}/copy", "leaderboard"]
    assert stages[f"score/{TASK}/copy"].upstream == [stages["copy/model"]]
    assert stages["leaderboard"].inputs["upstream"] == [stages[f"score/{TASK}/{name}"].fingerprint
                                                        for name in ("base", "copy")]
    console = Console(file=io.StringIO(), width=200)
    print_plan(list(stages.values()), console)
    assert "copy/model" in console.file.getvalue() and f"score/{TASK}/copy" in console.file.getvalue()

    summary = run_experiment(config, quiet())
    assert [checkpoint["name"] for checkpoint in summary["checkpoints"]] == ["base", "copy"]
    board = json.loads((tmp_path / "exp" / "leaderboard" / "leaderboard.json").read_text())
    assert sorted(row["model"] for row in board["rows"]) == ["base", "copy"]
    assert {stage.name: stage.status for stage in plan_stages(config)[0]} == dict.fromkeys(stages, DONE)

    monkeypatch.setattr(harness.run.plan, "ARMS", (*harness.run.plan.ARMS[:-1], copy_arm("second")))
    assert {stage.name: stage.status for stage in plan_stages(config)[0]} == {
        "copy/model": STALE, f"score/{TASK}/base": DONE, f"score/{TASK}/copy": STALE, "leaderboard": STALE}


def test_a_stage_whose_run_does_not_write_its_entry_is_named_at_once(tmp_path):
    entry = JsonEntry(tmp_path / "scores.json", ("tasks", "t1"))
    stage = a_stage(tmp_path, "score/t1", run=writes([]), entries=[entry])
    with pytest.raises(RuntimeError, match=r"score/t1 ran but .*scores.json holds no tasks/t1"):
        execute([stage], quiet())
