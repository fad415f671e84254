"""`selflengthen run --plan`: every stage with its settings and status, computed without running anything."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from harness.run.experiment_config import load_experiment
from harness.run.plan import plan_stages, print_plan
from harness.run.stages import recorded
from infra.journal import json_object, write_json_atomically
from judges.rubric import RUBRIC_DIR

ROOT = Path(__file__).resolve().parent.parent
LBW = "longbench_write_en_mini"  # one of tiny.yaml's two tasks


def plan_json(config: Path, env_data_dir: Path | None) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("SELFLENGTHEN_DATA_DIR", None)
    if env_data_dir:
        env["SELFLENGTHEN_DATA_DIR"] = str(env_data_dir)
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(config), "--plan", "--json"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_gpu_plan_shows_synthesis_concurrency_128_for_both_roles_and_three_judge_repeats(data_dir, tmp_path):
    stages = {s["name"]: s for s in plan_json(ROOT / "examples" / "gpu.yaml", data_dir)["stages"]}
    synthesis = stages["self_lengthen/iter_1/synthesis"]
    assert synthesis["concurrency"] == 128
    assert synthesis["roles"] == {"generator": {"concurrency": 128}, "extender": {"concurrency": 128}}
    assert synthesis["sampling"]["top_k"] == 20 and synthesis["backend"] == "vllm serve --dtype bfloat16"
    repeat = stages["judge_repeat/longbench_write/base"]
    assert repeat["repeats"] == 3 and repeat["model"] == "Qwen/Qwen2.5-72B-Instruct-AWQ"
    assert {s["status"] for s in stages.values()} == {"todo"}
    assert list(stages)[-1] == "leaderboard"


def tiny_config(tmp_path: Path, data_dir: Path, **changes) -> Path:
    raw = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text())
    raw.update(out_dir=str(tmp_path / "exp"), data_dir=str(data_dir))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def finish_every_stage(config: Path) -> None:
    """Record every stage as finished, as a completed run would, each scoring stage's task in scores.json too."""
    stages, _ = plan_stages(load_experiment(config))
    for stage in stages:
        with recorded([stage]):
            for entry in stage.entries:
                write_json_atomically(entry.file, {"tasks": {**json_object(entry.file, "tasks"), entry.keys[-1]: {}}})


def statuses(config: Path) -> dict[str, str]:
    return {s.name: s.status for s in plan_stages(load_experiment(config))[0]}


def own_inputs(config: Path) -> dict[str, dict]:
    """Each stage's inputs other than its upstream fingerprints: what changes when its own settings do."""
    return {s.name: {k: v for k, v in s.inputs.items() if k != "upstream"}
            for s in plan_stages(load_experiment(config))[0]}


def downstream_of(config: Path, roots: set[str]) -> set[str]:
    """`roots` and every stage whose upstream fingerprints lead back to one of them."""
    stages = plan_stages(load_experiment(config))[0]
    reached = set(roots)
    for stage in stages:  # stages are in execution order, so one pass closes the set
        fed_by = {s.name for s in stages if s.fingerprint in (stage.inputs.get("upstream") or [])}
        if fed_by & reached:
            reached.add(stage.name)
    return reached


@pytest.mark.parametrize(("field", "value", "kind"), [
    ("eval__max_gen_toks", 48, "score/"),
    ("judge__max_tokens", 100, "judge/"),
    ("self_lengthen__train__learning_rate", 3e-3, "/train"),  # the iterations' roles and the final model
    ("self_lengthen__final_data__min_words", 60, "self_lengthen/final/data"),
    ("self_lengthen__extender__rounds", 3, "/synthesis"),
    ("judge__server__extra_args", ["--seed", "1"], "judge/"),  # the judge server is part of its result
    ("backtranslation__max_documents", 4, "backtranslation/data"),
    ("imitation__train__num_train_epochs", 2, "imitation/train"),
])
def test_changing_one_field_makes_its_stages_and_only_their_downstream_stale(data_dir, tmp_path, field, value, kind):
    before = tiny_config(tmp_path, data_dir)
    finish_every_stage(before)
    assert set(statuses(before).values()) == {"done"}
    old = own_inputs(before)
    config = tiny_config(tmp_path, data_dir, **{field: value})
    roots = {name for name, inputs in own_inputs(config).items() if inputs != old[name] and name != "leaderboard"}
    assert roots and all(kind in name for name in roots), roots
    stale = {name for name, status in statuses(config).items() if status == "stale"}
    assert stale == downstream_of(config, roots) and "leaderboard" in stale
    assert "done" in statuses(config).values()


def test_a_data_arm_change_leaves_other_arms_done(data_dir, tmp_path):
    finish_every_stage(tiny_config(tmp_path, data_dir))
    after = statuses(tiny_config(tmp_path, data_dir, backtranslation__max_documents=4))
    assert after["self_lengthen/iter_1/synthesis"] == "done" and after[f"score/{LBW}/imitation"] == "done"
    assert after[f"score/{LBW}/backtranslation"] == "stale" and after[f"judge/{LBW}/backtranslation"] == "stale"
    assert after[f"score/{LBW}/base"] == "done"


@pytest.mark.parametrize(("passes", "judging"), [
    ({}, ("judge",)),
    ({"judge__repeat": 2, "judge__pairwise": True}, ("judge", "judge_repeat", "judge_pairwise")),
], ids=["judge", "with repeats and pairwise"])
def test_adding_a_task_plans_only_its_scoring_and_judging_and_removing_one_keeps_the_others_done(data_dir, tmp_path,
                                                                                                passes, judging):
    finish_every_stage(tiny_config(tmp_path, data_dir, tasks=[LBW], **passes))
    added = statuses(tiny_config(tmp_path, data_dir, tasks=[LBW, "longen_mini"], **passes))
    todo = {name for name, status in added.items() if status == "todo"}
    new = {name for name in added if name.startswith(tuple(f"{kind}/longen_mini/" for kind in ("score", *judging)))}
    assert todo == new and len(todo) == 6 * (1 + len(judging)) - ("judge_pairwise" in judging)  # the base: no pairwise
    assert {added[name] for name in added if name.startswith(tuple(f"{kind}/{LBW}/" for kind in ("score", *judging)))
            } == {"done"}
    # only the leaderboard reads every task's scores and judgements
    assert {name for name, status in added.items() if status == "stale"} == {"leaderboard"}
    assert {added[name] for name in added if name not in new | {"leaderboard"}} == {"done"}
    finish_every_stage(tiny_config(tmp_path, data_dir, tasks=[LBW, "longen_mini"], **passes))
    removed = statuses(tiny_config(tmp_path, data_dir, tasks=["longen_mini"], **passes))
    assert {removed[name] for name in removed if name.startswith(("score/", "judge"))} == {"done"}


def test_a_task_the_judge_has_no_rubric_for_has_no_judge_stage_unless_a_rubric_is_fixed(data_dir, tmp_path):
    ruler = "longwrite_ruler_mini"
    names = statuses(tiny_config(tmp_path, data_dir, tasks=[LBW, ruler]))
    assert f"score/{ruler}/base" in names and f"judge/{LBW}/base" in names
    assert not [name for name in names if name.startswith("judge") and f"/{ruler}/" in name]
    fixed = statuses(tiny_config(tmp_path, data_dir, tasks=[LBW, ruler], judge__rubric="longbench_write"))
    assert f"judge/{ruler}/base" in fixed


SCORES_GONE = {
    # what happens to the base checkpoint's scores.json: the tasks whose scoring stage then plans todo
    "deleted": (lambda file: file.unlink(), {LBW, "longen_mini"}),
    "unreadable": (lambda file: file.write_text("{not json"), {LBW, "longen_mini"}),
    "rewritten without one task": (
        lambda file: file.write_text(json.dumps({"tasks": {"longen_mini": {}}})), {LBW}),
}


JUDGEMENTS_GONE = {
    # what happens to the base checkpoint's judgements.json or judge_sanity.json: the tasks whose judge stage
    # then plans todo
    "judgements deleted": ("judgements.json", lambda file: file.unlink(), {LBW, "longen_mini"}),
    "judgements rewritten without one task": (
        "judgements.json", lambda file: file.write_text(json.dumps({"tasks": {"longen_mini": {}}})), {LBW}),
    "sanity unreadable": ("judge_sanity.json", lambda file: file.write_text("{not json"), {LBW, "longen_mini"}),
}


@pytest.mark.parametrize("kind", list(JUDGEMENTS_GONE))
def test_a_done_judge_stage_whose_task_is_gone_from_its_report_plans_todo_and_nothing_else_changes(data_dir, tmp_path,
                                                                                                  kind):
    config = tiny_config(tmp_path, data_dir)
    finish_every_stage(config)
    report, change, missing = JUDGEMENTS_GONE[kind]
    change(tmp_path / "exp" / "runs" / "base" / report)
    after = statuses(config)
    assert {name for name, status in after.items() if status != "done"} == {f"judge/{task}/base" for task in missing}
    assert {after[f"judge/{task}/base"] for task in missing} == {"todo"}


@pytest.mark.parametrize("kind", list(SCORES_GONE))
def test_a_done_score_stage_whose_task_is_gone_from_scores_json_plans_todo_and_nothing_else_changes(data_dir,
                                                                                                    tmp_path, kind):
    config = tiny_config(tmp_path, data_dir)
    finish_every_stage(config)
    change, missing = SCORES_GONE[kind]
    change(tmp_path / "exp" / "runs" / "base" / "scores.json")
    after = statuses(config)
    assert {name for name, status in after.items() if status != "done"} == {f"score/{task}/base" for task in missing}
    assert {after[f"score/{task}/base"] for task in missing} == {"todo"}


def test_data_dir_fills_the_data_variable_without_the_environment(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SELFLENGTHEN_DATA_DIR", raising=False)
    config = load_experiment(tiny_config(tmp_path, data_dir))
    assert config.backtranslation.corpus == f"{data_dir}/federalist.jsonl"
    assert config.self_lengthen.seed_files["en"] == str(data_dir.resolve() / "seed_instructions_en.jsonl")
    assert "SELFLENGTHEN_DATA_DIR" not in os.environ


def test_the_final_model_is_trained_on_every_iterations_data_after_the_last_and_scored_as_its_own_arm(data_dir,
                                                                                                   tmp_path):
    stages, checkpoints = plan_stages(load_experiment(tiny_config(tmp_path, data_dir)))
    names = [s.name for s in stages]
    by_name = {s.name: s for s in stages}
    assert names.index("self_lengthen/final/data") > names.index("self_lengthen/iter_2/train_extender")
    assert by_name["self_lengthen/final/data"].inputs["upstream"] == [
        by_name[f"self_lengthen/iter_{k}/synthesis"].fingerprint for k in (1, 2)]
    assert by_name["self_lengthen/final/train"].inputs["upstream"] == [by_name["self_lengthen/final/data"].fingerprint]
    final = next(c for c in checkpoints if c.name == "self_lengthen/final")
    assert (final.arm, final.iteration, final.producer) == ("self_lengthen/final", None, by_name["self_lengthen/final/train"])
    assert {f"score/{LBW}/self_lengthen/final", f"judge/{LBW}/self_lengthen/final"} <= set(names)
    assert f"score/{LBW}/self_lengthen/iter_2/generator" in names  # the iterations stay benchmarked


def test_the_plan_shows_a_score_stages_answer_cap_as_lm_evals_max_gen_toks(data_dir, tmp_path):
    capped = {s.name: s for s in plan_stages(load_experiment(tiny_config(tmp_path, data_dir)))[0]}
    assert capped[f"score/{LBW}/base"].sampling["max_gen_toks"] == 64  # tiny.yaml's eval.max_gen_toks
    assert "max_tokens" not in capped[f"score/{LBW}/base"].sampling
    own = {s.name: s for s in plan_stages(load_experiment(tiny_config(tmp_path, data_dir, eval__max_gen_toks=None)))[0]}
    assert own[f"score/{LBW}/base"].sampling["max_gen_toks"] == 1280  # each *_mini task's own cap (its YAML)
    assert own["score/longen_mini/base"].sampling["max_gen_toks"] == 1280


def plan_at_80_columns(stages) -> list[str]:
    console = Console(width=80, record=True, file=io.StringIO())
    print_plan(stages, console)
    return console.export_text().splitlines()


def test_the_plan_at_80_columns_gives_each_stage_its_whole_name_and_status_on_one_row(data_dir, tmp_path):
    # A name longer than the stage column (score/<task>/<checkpoint> since scoring is per task) folds onto a
    # continuation line; its status, wall seconds and settings number stay whole on the row's first line.
    stages = plan_stages(load_experiment(tiny_config(tmp_path, data_dir)))[0]
    lines = plan_at_80_columns(stages)
    assert max(len(line) for line in lines) <= 80
    header = next(i for i, line in enumerate(lines) if line.startswith("stage "))
    width = lines[header].index("status")
    rows: list[list[str]] = []
    for line in lines[header + 2:]:
        if line.startswith("settings:"):  # the table's end: the settings legend follows
            break
        if line[width:].strip():
            rows.append([line[:width].strip(), line[width:].split()[0]])
        elif rows and line.strip():
            rows[-1][0] += line.strip()
    assert rows == [[stage.name, stage.status] for stage in stages]
    assert sum(len(stage.name) >= width for stage in stages) >= 2  # some names did fold


def test_the_plan_writes_each_set_of_settings_once_under_the_table_with_untrusted_names_as_text(data_dir, tmp_path):
    stages = plan_stages(load_experiment(tiny_config(tmp_path, data_dir)))[0]
    for stage in stages:
        if stage.kind == "judge":
            stage.model = "[bold]judge[/bold]"
    text = "\n".join(plan_at_80_columns(stages))
    assert text.count("[bold]judge[/bold] · inprocess serve · concurrency 8") == 1
    assert text.count("the checkpoint its name ends with · inprocess serve") == 1  # every score stage
    with_stop = {(stage.model, stage.backend, str(stage.sampling)) for stage in stages
                 if (stage.sampling or {}).get("stop")}
    assert text.count("'<|im_end|>'") == len(with_stop) == 3  # the stop strings once per set, not once per stage


def test_a_judging_stage_follows_the_rubric_it_grades_with(data_dir, tmp_path):
    stages = plan_stages(load_experiment(tiny_config(tmp_path, data_dir)))[0]
    versions = {stage.extra["task"]: stage.inputs["version"] for stage in stages if stage.kind == "judge"}
    assert versions[LBW] != versions["longen_mini"]  # each task's packaged rubric, not the whole package
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text((RUBRIC_DIR / "longen.yaml").read_text())
    config = tiny_config(tmp_path, data_dir, judge__rubric=str(rubric))
    finish_every_stage(config)
    rubric.write_text(rubric.read_text() + "\n# a reworded rubric\n")
    judged = {stage.name for stage in plan_stages(load_experiment(config))[0] if stage.kind.startswith("judge")}
    assert judged and {name for name, status in statuses(config).items() if status != "done"} == judged | {"leaderboard"}
