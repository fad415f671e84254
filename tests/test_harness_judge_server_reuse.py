"""One judge server serves every judging pass of an experiment that can share it (a 72B judge loads for
minutes): the judge, its reliability repeats and the pairwise comparisons, except on a transformers
server, whose continuous batching fixes sampling, so its sampled repeats get a server of their own.

The slow tests execute the judging stages `run` plans, with a real in-process judge on the tiny random model (its replies fail
to parse, which does not matter here) and counts the servers it starts by wrapping the real
`judge_endpoint`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

import harness.run.judge_stages
import harness.scoring.judging
from harness.cli import main
from harness.run.execute import execute
from harness.run.experiment_config import ExperimentConfig, load_experiment
from harness.run.judge_stages import judge_stages
from harness.run.plan import plan_stages
from harness.run.scores import score_stages
from harness.run.stages import DONE, PlannedCheckpoint, Stage, recorded
from harness.scoring.judging import JUDGE_PAIRWISE, JUDGE_RELIABILITY, JUDGE_SANITY, JudgeRunConfig, judge_servers
from harness.serving.serve import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
PASSES = ["judge", "judge_repeat", "judge_pairwise"]
ANSWERS = ["Rivers carve valleys. They carry silt to the sea.\n\nFloods renew the plains.",
           "Mountains rise slowly. Ice and rain wear them down.\n\nTheir stones end as sand."]
TASK = "longbench_write_en_mini"


@pytest.mark.parametrize("kind", ["inprocess", "vllm"])
def test_a_judge_that_honours_each_requests_sampling_serves_every_pass_from_one_server(kind):
    judge = JudgeRunConfig(model="smollm2-135m", server=ServerConfig(kind=kind), repeat=2, pairwise=True)
    assert judge_servers(judge, PASSES) == [(judge, PASSES)]


def test_a_judge_at_an_endpoint_serves_every_pass():
    judge = JudgeRunConfig(model="judge", endpoint="http://127.0.0.1:8000/v1", repeat=2)
    assert judge_servers(judge, PASSES) == [(judge, PASSES)]


def test_a_continuous_batching_transformers_judge_gets_a_second_server_for_the_sampled_repeats_only():
    judge = JudgeRunConfig(model="smollm2-135m", server=ServerConfig(kind="transformers"), max_retries=0, repeat=2)
    servers = judge_servers(judge, PASSES)
    assert [passes for _, passes in servers] == [["judge", "judge_pairwise"], ["judge_repeat"]]
    assert servers[0][0] == judge
    assert servers[1][0] == dataclasses.replace(judge, server=ServerConfig(kind="transformers",
                                                                           continuous_batching=False))


def test_a_transformers_judge_without_continuous_batching_serves_every_pass_from_one_server():
    judge = JudgeRunConfig(model="smollm2-135m", server=ServerConfig(kind="transformers", continuous_batching=False),
                           repeat=2)
    assert judge_servers(judge, PASSES) == [(judge, PASSES)]


def test_the_gpu_plan_shows_one_judge_server_for_every_judging_stage(data_dir):
    stages = [stage.as_json() for stage in plan_stages(load_experiment(ROOT / "examples" / "gpu.yaml"))[0]]
    judging = [stage for stage in stages if stage["kind"].startswith("judge")]
    assert {stage["kind"] for stage in judging} == {"judge", "judge_repeat"}
    assert {stage["judge_server"] for stage in judging} == {"1 of 1: judge, judge_repeat"}
    assert {stage["backend"] for stage in judging} == {"vllm serve --dtype float16"}
    assert all("judge_server" not in stage for stage in stages if not stage["kind"].startswith("judge"))


def write_run(run_dir: Path, model: str, tasks: tuple[str, ...] = (TASK,)) -> Path:
    samples = [{"doc_id": i, "prompt": f"Write about {i * 100 + 100} words on nature.", "response": a}
               for i, a in enumerate(ANSWERS)]
    run_dir.mkdir(parents=True)
    (run_dir / "scores.json").write_text(json.dumps({"model": model,
                                                     "tasks": {task: {"samples": samples} for task in tasks}}))
    return run_dir


def requests_sent(log: Path) -> int:
    return log.read_text().count("POST /v1/chat/completions")


def judge_as_run_does(judge: JudgeRunConfig, out: Path, tasks: tuple[str, ...] = (TASK,)) -> list[Stage]:
    """Plan the judging of the runs `base` and `arm` in `out/runs` as `run` does (their scoring recorded as
    done: write_run wrote their answers) and execute it; returns the judging stages."""
    config = ExperimentConfig(judge=judge, tasks=list(tasks), out_dir=str(out))
    scored = [(checkpoint, score_stages(config, checkpoint))
              for checkpoint in (PlannedCheckpoint(name, name, name, None, None) for name in ("base", "arm"))]
    with recorded([stage for _, scores in scored for stage in scores]):
        pass
    stages = judge_stages(config, scored)
    execute(stages, Console(file=io.StringIO()))
    return stages


@pytest.mark.slow
def test_the_judging_stages_start_one_judge_server_for_the_judge_repeat_and_pairwise_passes(tiny_model_dir,
                                                                                           tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runs = {name: write_run(tmp_path / "runs" / name, name) for name in ("base", "arm")}
    judge = JudgeRunConfig(model=str(tiny_model_dir), server=ServerConfig(kind="inprocess", torch_threads=1),
                           max_tokens=16, max_retries=0, sanity_subset=0, top_logprobs=0, repeat=2, repeat_subset=2,
                           pairwise=True)
    started = []
    real_judge_endpoint = harness.run.judge_stages.judge_endpoint

    @contextlib.contextmanager
    def counting_judge_endpoint(config, log_path, *args, **kwargs):
        started.append(log_path.name)
        with real_judge_endpoint(config, log_path, *args, **kwargs) as endpoint:
            yield endpoint

    monkeypatch.setattr(harness.run.judge_stages, "judge_endpoint", counting_judge_endpoint)
    stages = judge_as_run_does(judge, tmp_path)

    assert started == ["judge_server.log"]
    for run_dir in runs.values():
        assert json.loads((run_dir / "judgements.json").read_text())["tasks"][TASK]["n"] == 2
        assert json.loads((run_dir / JUDGE_RELIABILITY).read_text())["tasks"][TASK]
    assert json.loads((runs["arm"] / JUDGE_PAIRWISE).read_text())["reference"] == "base"
    assert not (runs["base"] / JUDGE_PAIRWISE).exists()
    assert sorted(stage.name for stage in stages) == sorted(
        f"{kind}/{TASK}/{name}" for kind in PASSES for name in runs if kind != "judge_pairwise" or name != "base")
    assert {stage.status for stage in stages} == {DONE}


@pytest.mark.slow
def test_judging_an_added_task_judges_only_it_and_keeps_every_reports_entries_of_the_tasks_judged_before(
        tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    added = "longen_mini"
    runs = {name: write_run(tmp_path / "runs" / name, name, (TASK, added)) for name in ("base", "arm")}
    judge = JudgeRunConfig(model=str(tiny_model_dir), server=ServerConfig(kind="inprocess", torch_threads=1),
                           max_tokens=16, max_retries=0, sanity_subset=2, sanity_scope="base", top_logprobs=0,
                           repeat=2, repeat_subset=2, pairwise=True)

    judge_as_run_does(judge, tmp_path)
    first = requests_sent(tmp_path / "judge_server.log")
    reports = [run_dir / name for run_dir in runs.values()
               for name in ("judgements.json", JUDGE_SANITY, JUDGE_RELIABILITY, JUDGE_PAIRWISE)
               if name != JUDGE_PAIRWISE or run_dir.name != "base"]
    before = {path: json.loads(path.read_text())["tasks"] for path in reports}
    assert all(list(tasks) == [TASK] for tasks in before.values())
    stages = judge_as_run_does(judge, tmp_path, (TASK, added))
    # only the added task's requests (its answers are the first task's, so as many); the log is appended to
    assert requests_sent(tmp_path / "judge_server.log") == 2 * first > 0

    for path, tasks in before.items():
        after = json.loads(path.read_text())["tasks"]
        assert list(after) == [TASK, added] and after[TASK] == tasks[TASK], path
    base_sanity, arm_sanity = (json.loads((runs[name] / JUDGE_SANITY).read_text()) for name in ("base", "arm"))
    assert arm_sanity == {**base_sanity, "answers_from": "base"}  # each task's the base arm's
    assert {stage.status for stage in stages} == {DONE}


def test_the_judge_command_judges_and_repeats_on_one_server(tmp_path, monkeypatch):
    """As `run` does: the repeats of an in-process judge reuse the server the judging started (fakes: no model)."""
    runs = [write_run(tmp_path / name, name) for name in ("a", "b")]
    started, calls = [], []

    @contextlib.contextmanager
    def fake_judge_endpoint(config, log_path, *args, **kwargs):
        started.append(log_path.name)
        yield f"server {len(started)}"

    monkeypatch.setattr(harness.scoring.judging, "judge_endpoint", fake_judge_endpoint)
    for step in ("judge_run", "judge_reliability"):
        monkeypatch.setattr(harness.scoring.judging, step, lambda run_dir, endpoint, judge, console, step=step:
                            calls.append((step, run_dir.name, endpoint)))
    assert main(["judge", *map(str, runs), "--repeat", "2"]) == 0
    assert started == ["judge_server.log"]
    assert calls == [("judge_run", "a", "server 1"), ("judge_run", "b", "server 1"),
                     ("judge_reliability", "a", "server 1"), ("judge_reliability", "b", "server 1")]
