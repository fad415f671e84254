"""Matched training budgets (issue #38 item 2): every scored arm fine-tunes on a seeded subsample of the same size,
the plan says so on each of their training stages, and a run with the setting off keeps its fingerprints."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from harness.config import from_dict
from harness.run.experiment_config import load_experiment
from harness.run.plan import plan_stages, print_plan
from harness.run.train import MatchedBudgetConfig, matched_data
from infra.journal import read_jsonl
from selflengthen.baselines import ImitationConfig, train_baseline
from selflengthen.sft_data import subsample
from tests.test_harness_cli_errors import assert_one_line_error, run_main
from tests.test_baselines_steps import (PLAN, imitation_config, run_imitation, section_reply, teacher,
                                        write_instructions)
from tests.test_harness_plan import tiny_config
from tests.test_harness_train import run_train, train_config

SCORED_TRAINING = {"self_lengthen/iter_1/train_generator", "self_lengthen/iter_2/train_generator",
                   "self_lengthen/final/train", "backtranslation/train", "imitation/train"}


def examples(count: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(count)]


def write_data(path: Path, count: int) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in examples(count)))
    return path


def test_a_subsample_keeps_the_drawn_examples_in_their_order_and_repeats_with_its_seed():
    drawn = subsample(examples(10), 4, random.Random(7))
    assert len(drawn) == 4 and drawn == subsample(examples(10), 4, random.Random(7))
    assert drawn == sorted(drawn, key=lambda row: int(row["messages"][0]["content"][1:]))


def test_a_subsample_of_fewer_examples_than_the_budget_keeps_them_all():
    assert subsample(examples(3), 5, random.Random(0)) == examples(3)


def test_with_budgets_off_an_arm_trains_on_its_data_itself(tmp_path):
    data = write_data(tmp_path / "data.jsonl", 5)
    assert matched_data(data, MatchedBudgetConfig(), 0, "backtranslation") == (data, "off")


@pytest.mark.parametrize(("rows", "note", "trained"), [
    (5, "examples: 2, seeded subsample of 5", 2),
    (2, "examples: 2, all the arm has", 2),
    (1, "examples: 1, all the arm has (fewer than the 2 matched)", 1),
])
def test_a_matched_arm_trains_on_a_subsample_beside_its_data_and_its_table_says_how(tmp_path, rows, note, trained):
    data = write_data(tmp_path / "data.jsonl", rows)
    path, said = matched_data(data, MatchedBudgetConfig(examples=2), 0, "backtranslation")
    assert (path, said, len(read_jsonl(path))) == (tmp_path / "data.matched.jsonl", note, trained)
    assert read_jsonl(data) == examples(rows)  # the arm's own data is left whole


def test_each_arm_draws_its_own_subsample(tmp_path):
    data = write_data(tmp_path / "data.jsonl", 30)
    budget = MatchedBudgetConfig(examples=5)
    first = read_jsonl(matched_data(data, budget, 0, "backtranslation")[0])
    assert first != read_jsonl(matched_data(data, budget, 0, "imitation")[0])


def test_tiny_yaml_matches_every_scored_arms_training_and_the_plan_says_so(data_dir, tmp_path):
    stages = plan_stages(load_experiment(tiny_config(tmp_path, data_dir)))[0]
    matched = {stage.name: stage.extra.get("matched_budget") for stage in stages if stage.kind == "train"}
    assert {name for name, text in matched.items() if text} == SCORED_TRAINING
    assert {matched[name] for name in SCORED_TRAINING} == {"examples: 1 per arm, seeded subsample"}
    console = Console(width=80, record=True, file=io.StringIO())
    print_plan(stages, console)
    assert "trl (LoRA) · matched budget: examples: 1 per arm, seeded subsample" in " ".join(console.export_text().split())


def own_inputs(config: Path) -> dict[str, dict]:
    return {s.name: {k: v for k, v in s.inputs.items() if k != "upstream"}
            for s in plan_stages(load_experiment(config))[0]}


def test_another_budget_changes_the_scored_arms_training_stages_and_no_other(data_dir, tmp_path):
    one = own_inputs(tiny_config(tmp_path, data_dir))
    three = own_inputs(tiny_config(tmp_path, data_dir, matched_budget__examples=3))
    assert {name for name in one if one[name] != three[name]} == SCORED_TRAINING


def test_budgets_off_add_nothing_to_a_fingerprint_so_runs_from_before_the_setting_stay_done(data_dir, tmp_path):
    off = plan_stages(load_experiment(tiny_config(tmp_path, data_dir, matched_budget__examples=None)))[0]
    assert not any("matched_budget" in stage.inputs for stage in off)
    assert {stage.extra["matched_budget"] for stage in off if stage.name in SCORED_TRAINING} == {"off"}


@pytest.mark.slow
def test_selflengthen_train_with_a_matched_budget_trains_the_generator_and_the_final_model_on_it(
        tiny_model_dir, tmp_path):
    config = train_config(tmp_path, tiny_model_dir, {"kind": "inprocess", "max_batch_size": 8})
    raw = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**raw, "matched_budget": {"examples": 1}}))
    result = run_train(config)
    assert result.returncode == 0, result.stderr[-3000:]
    work = tmp_path / "work"
    generator, final = json.loads((work / "checkpoints.json").read_text())
    for checkpoint, data in ((generator, work / "iter_1" / "generator_data.jsonl"),
                             (final, work / "final" / "final_data.jsonl")):
        assert checkpoint["train_stats"]["samples"] == 1 < len(read_jsonl(data))
        assert checkpoint["train_stats"]["matched_budget"] == f"examples: 1, seeded subsample of {len(read_jsonl(data))}"
    extender = json.loads((work / "iter_1" / "extender_adapter" / "train_stats.json").read_text())
    assert extender["samples"] == len(read_jsonl(work / "iter_1" / "extender_data.jsonl"))  # no scored arm


@pytest.mark.parametrize(("changes", "names"), [
    ({"matched_budget__examples": 0}, "matched_budget: examples must be at least 1 or null, got 0"),
    ({"matched_budget__tokens": 5}, "unknown field 'tokens'"),
    ({"backtranslation__min_rating": None, "backtranslation__constrained_rating": True},
     "backtranslation: constrained_rating needs min_rating"),
    ({"imitation__constrained_plan": "sometimes"}, "imitation.constrained_plan"),
])
@pytest.mark.parametrize("plan", [True, False])
def test_a_bad_matched_budget_or_constrained_reply_setting_is_refused_in_one_line_before_any_work(
        changes, names, plan, data_dir, tmp_path, capsys, monkeypatch):
    argv = ["run", str(tiny_config(tmp_path, data_dir, **changes)), *(["--plan"] if plan else [])]
    result = run_main(argv, capsys, monkeypatch, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, names)
    assert not (tmp_path / "exp").exists()


@pytest.mark.slow
def test_a_baseline_with_a_matched_budget_trains_on_its_subsample_and_keeps_its_data_runs_count(
        tmp_path, tiny_model_dir, monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    work = tmp_path / "im"
    run_imitation(teacher(plan=PLAN, section=section_reply), imitation_config(write_instructions(tmp_path / "i.jsonl")),
                  work)
    data_file, _ = matched_data(work / "data.jsonl", MatchedBudgetConfig(examples=1), 0, "imitation")
    train = from_dict(ImitationConfig, {"train": {"max_steps": 1, "torch_threads": 1, "logging_steps": 1}}).train
    stats = train_baseline(work, str(tiny_model_dir), train, data_file=data_file)
    assert (stats["samples"], stats["training"]["samples"]) == (2, 1)
