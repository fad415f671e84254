"""The CI profile (examples/ci.yaml), its committed baseline (docs/results/ci/) and the copy-ready workflow
(docs/ci/long-output.yml), issue #35 items 2 and 4: the profile loads and is sized by `selflengthen power`,
the baseline holds the small run's own per-prompt scores on the profile's prompts, and the gate fails the
base against the final arm's baseline and passes the final arm against itself, from the committed files alone."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from harness.cli import main as cli_main
from harness.config import from_dict, load_yaml
from harness.scoring.evaluate import EvalConfig, validate_eval
from leaderboard.board import load_leaderboard, metric_values
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "examples" / "ci.yaml"
SMALL = ROOT / "docs" / "results" / "small"
CI = ROOT / "docs" / "results" / "ci"
WORKFLOW = ROOT / "docs" / "ci" / "long-output.yml"
FINAL_BOARD = CI / "self_lengthen-final" / "leaderboard.json"
BASE_BOARD = CI / "base" / "leaderboard.json"
FINAL_ADAPTER = SMALL / "state-amended" / "runs_small" / "train" / "self_lengthen" / "final" / "adapter"
ARMS = ("self_lengthen-final", "base")


def profile() -> EvalConfig:
    return from_dict(EvalConfig, load_yaml(PROFILE), where=PROFILE.name)


def committed_scores(folder: Path) -> dict:
    return json.loads((folder / "scores.json").read_text(encoding="utf-8"))


def test_the_profile_loads_as_an_eval_config_and_validates():
    config = profile()
    validate_eval(config)
    assert config.tasks == ["longbench_write_en_small", "longen_en_small"]
    assert config.limit == 22
    assert config.sampling is None  # each task's published decoding


def test_the_profile_decodes_and_caps_as_the_small_experiment_did():
    small = yaml.safe_load((ROOT / "examples" / "small.yaml").read_text(encoding="utf-8"))
    config = profile()
    assert config.tasks == small["tasks"]
    assert config.max_gen_toks == small["eval"]["max_gen_toks"] == 2304
    assert config.seed == small["eval"]["seed"] == small["seed"] == 0
    assert config.server.kind == small["eval"]["server"]["kind"] == "inprocess"
    assert "sampling" not in small["eval"]


def test_the_profile_header_names_the_power_command_and_the_prompt_count_it_gave():
    header = PROFILE.read_text(encoding="utf-8")
    assert ("selflengthen power docs/results/small/leaderboard.json --baseline self_lengthen/final "
            "--candidate base") in header
    assert f"smallest n with power >= 80%: {profile().limit} prompts per task" in header


@pytest.mark.slow  # about 10 s: the command's own 1,000 resamples per size, as the header quotes them
def test_selflengthen_power_gives_the_profile_prompt_count():
    from leaderboard.power import PowerConfig, estimate_power

    result = estimate_power(load_leaderboard(SMALL / "leaderboard.json"), PowerConfig("self_lengthen/final", "base"))
    assert result.smallest_n == profile().limit


@pytest.mark.parametrize("arm", ARMS)
def test_the_baseline_holds_the_profile_prompts_with_the_small_run_per_prompt_scores(arm):
    limit = profile().limit
    ours, small = committed_scores(CI / arm / "run"), committed_scores(SMALL / "runs" / arm)
    assert sorted(ours["tasks"]) == sorted(profile().tasks)
    for task, entry in ours["tasks"].items():
        assert [s["doc_id"] for s in entry["samples"]] == list(range(limit))
        by_id = {s["doc_id"]: s for s in small["tasks"][task]["samples"]}
        assert entry["samples"] == [by_id[s["doc_id"]] for s in entry["samples"]]  # score, answer, prompt alike
        assert entry["n"] == limit


@pytest.mark.parametrize("arm", ARMS)
def test_each_leaderboard_carries_its_run_per_prompt_values(arm):
    board = load_leaderboard(CI / arm / "leaderboard.json")
    (row,) = board["rows"]
    scores = committed_scores(CI / arm / "run")
    for task, entry in row["tasks"].items():
        primary = entry["primary"]
        assert metric_values(entry, primary) == {s["doc_id"]: s["score"] for s in scores["tasks"][task]["samples"]}


@pytest.mark.parametrize("arm", ARMS)
def test_the_build_script_rebuilds_the_committed_run_files(arm):
    build = load_script(CI / "build_baseline.py", "ci_build_baseline")
    files = build.run_files(arm)
    for name, content in files.items():
        assert json.loads((CI / arm / "run" / name).read_text(encoding="utf-8")) == content
    assert build.per_prompt_differences(arm, files["scores.json"]) == []


def test_the_baseline_prompts_are_the_first_prompts_of_each_task(data_dir):
    from tasks.data import load_benchmark

    scores = committed_scores(CI / "self_lengthen-final" / "run")
    for task, field in (("longbench_write_en_small", "prompt"), ("longen_en_small", "query")):
        rows = load_benchmark(task, data_dir)[:profile().limit]
        assert [row[field] for row in rows] == [s["prompt"] for s in scores["tasks"][task]["samples"]]


def test_dry_run_the_gate_fails_base_against_the_final_arm_baseline():
    assert cli_main(["check", "--baseline", str(FINAL_BOARD), "--candidate", str(BASE_BOARD)]) == 1


def test_dry_run_the_gate_passes_the_final_arm_against_itself():
    assert cli_main(["check", "--baseline", str(FINAL_BOARD), "--candidate", str(FINAL_BOARD)]) == 0


def test_eval_seed_flag_overrides_the_profile_seed(monkeypatch, tmp_path):
    import harness.scoring.evaluate

    seen = {}

    def fake_run_eval(config, out_dir, console=None, run_info=None):
        seen["config"] = config
        return {"model": config.model, "tasks": {}}

    monkeypatch.setattr(harness.scoring.evaluate, "run_eval", fake_run_eval)
    assert cli_main(["eval", "--config", str(PROFILE), "--seed", "1", "--out", str(tmp_path / "run")]) == 0
    assert seen["config"].seed == 1
    assert seen["config"].limit == profile().limit


def test_same_prompts_accepts_the_baseline_and_refuses_other_prompts(tmp_path):
    same = load_script(ROOT / "docs" / "ci" / "same_prompts.py", "ci_same_prompts")
    baseline = CI / "self_lengthen-final" / "run" / "scores.json"
    assert same.main([str(baseline), str(CI / "base" / "run" / "scores.json")]) == 0
    scores = committed_scores(CI / "base" / "run")
    scores["tasks"]["longen_en_small"]["samples"][3]["prompt"] = "Write 200 words about something else."
    (tmp_path / "other.json").write_text(json.dumps(scores), encoding="utf-8")
    assert same.main([str(baseline), str(tmp_path / "other.json")]) == 2
    scores = committed_scores(CI / "base" / "run")
    del scores["tasks"]["longbench_write_en_small"]["samples"][-1]
    (tmp_path / "fewer.json").write_text(json.dumps(scores), encoding="utf-8")
    assert same.main([str(baseline), str(tmp_path / "fewer.json")]) == 2


def test_the_workflow_runs_the_profile_and_checks_against_the_committed_baseline():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    env = workflow["env"]
    runs = "\n".join(step.get("run", "") for step in workflow["jobs"]["long-output"]["steps"])
    assert "selflengthen eval --config examples/ci.yaml" in runs
    assert "selflengthen check --baseline \"$BASELINE\"" in runs
    assert (ROOT / env["BASELINE"]).resolve() == FINAL_BOARD
    assert (ROOT / env["BASELINE_SCORES"]).is_file()
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in runs
    assert (ROOT / env["ADAPTER"].split("'")[1] / "adapter_config.json").is_file()


def test_the_workflow_checksums_are_those_of_the_benchmark_files(data_dir):
    text = WORKFLOW.read_text(encoding="utf-8")
    sums = dict((name, digest) for digest, name in re.findall(r"^\s*([0-9a-f]{64})  (\S+)$", text, re.MULTILINE))
    assert set(sums) == {"longbench_write_en.jsonl", "longen.jsonl"}
    for name, digest in sums.items():
        assert hashlib.sha256((data_dir / name).read_bytes()).hexdigest() == digest


def test_the_final_arm_adapter_that_the_live_demonstration_evaluates_is_committed():
    stats = json.loads((FINAL_ADAPTER / "train_stats.json").read_text(encoding="utf-8"))
    run = json.loads((SMALL / "runs" / "self_lengthen-final" / "run.json").read_text(encoding="utf-8"))
    assert (stats["samples"], stats["train_tokens"], stats["final_loss"]) == (
        run["train_stats"]["samples"], run["train_stats"]["train_tokens"], run["train_stats"]["final_loss"])
