"""A finished experiment, one input changed: `run --plan` says what is stale and `run` redoes exactly that.

The session's finished tiny experiment (tests/finished_experiment.py: every arm on the tiny random
model, one document scored and judged per checkpoint) is copied for each case and one input is
changed: a config field, the judge server, an input file's content (seed instructions, corpus,
benchmark rows; edited in place at the same size, so only a content hash sees it), or the code of
the package that computes a stage (scorers, judges, rubric text, the method: a copy of the source
tree with one file edited, planned by a `selflengthen` started on that copy). Every case checks
`selflengthen run --plan --json`: `stale` for the changed stage and everything downstream of it,
`done` for the rest (the skipped imitation arm's untrained stages stay `todo`). Three cases also
re-run for real, side by side: a synthesis field, an eval field and the number of scored documents.
The stale stages are redone (new marker fingerprint, new outputs), the done ones are untouched
(marker and outputs keep their mtimes), and what docs/run_directory.md says is reused is reused: a
stale synthesis is moved aside, lm-eval's request cache survives only an unchanged generation, the
judge cache survives unchanged judge settings. The other cases check `--plan` only: their re-runs
are the same machinery. Two more re-run for real: an added task, and a deleted scores.json (its
checkpoint's scoring runs again; a marker alone does not make a stage done whose scores are gone).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.run.experiment_config import load_experiment
from harness.run.plan import plan_stages
from harness.run.stages import read_marker
from tests.finished_experiment import ROOT, SAMPLING, TRAIN, copy_finished

pytestmark = pytest.mark.slow

SL = "self_lengthen/iter_1"
SL_RUN = f"{SL}/generator"
FINAL = "self_lengthen/final"
METHOD = {f"{SL}/synthesis", f"{SL}/train_generator", f"{SL}/train_extender", f"{FINAL}/data", f"{FINAL}/train"}
BACKTRANSLATION = {"backtranslation/data", "backtranslation/train"}
TASK = "longbench_write_en_mini"  # the one task the finished experiment scores
NEVER_RUN = {"imitation/train", f"score/{TASK}/imitation", f"judge/{TASK}/imitation"}  # the random teacher writes no plan


def scored(*checkpoints: str) -> set[str]:
    return {name for c in checkpoints for name in (f"score/{TASK}/{c}", f"judge/{TASK}/{c}")}


ALL_SCORED = ("base", SL_RUN, FINAL, "backtranslation")
ALL_STAGES = METHOD | BACKTRANSLATION | {"imitation/data", "leaderboard"} | NEVER_RUN | scored(*ALL_SCORED)
JUDGED = {f"judge/{TASK}/{c}" for c in ALL_SCORED} | {"leaderboard"}
SELF_LENGTHEN_DOWN = METHOD | {"imitation/data"} | scored(SL_RUN, FINAL) | {"leaderboard"}
BACKTRANSLATION_DOWN = BACKTRANSLATION | scored("backtranslation") | {"leaderboard"}
CHANGES = {
    # kind of field: (the change, the stages it makes stale)
    "synthesis": ({"self_lengthen": {"sampling": {**SAMPLING, "temperature": 0.9}}}, SELF_LENGTHEN_DOWN),
    "training": ({"self_lengthen": {"train": {**TRAIN, "learning_rate": 3e-3}}},
                 {f"{SL}/train_generator", f"{SL}/train_extender", f"{FINAL}/train", "leaderboard"}
                 | scored(SL_RUN, FINAL)),
    "final data": ({"self_lengthen": {"final_data": {"min_words": 2}}},
                   {f"{FINAL}/data", f"{FINAL}/train", "leaderboard"} | scored(FINAL)),
    "baseline data": ({"backtranslation": {"shown_words": 30}}, BACKTRANSLATION_DOWN),
    "eval": ({"eval": {"max_gen_toks": 6}}, scored(*ALL_SCORED) | {"leaderboard"}),
    "judge": ({"judge": {"max_tokens": 20}}, JUDGED),
    "judge server": ({"judge": {"server": {"kind": "transformers", "torch_threads": 1}}}, JUDGED),
    "scored documents": ({"limit": 2}, scored(*ALL_SCORED) | {"leaderboard"}),
}
RERUN = ["synthesis", "eval", "scored documents"]
FILE_EDITS = {
    # input file (under the copy's inputs/): (text replaced by one of the same length, the stages it makes stale)
    "seed instructions": ("seeds.jsonl", "topic 0", "topic 9", SELF_LENGTHEN_DOWN),
    "corpus": ("data/federalist.jsonl", "AFTER an", "AFTER a ", BACKTRANSLATION_DOWN),
    "benchmark rows": ("data/longbench_write_en.jsonl", "Write", "write", scored(*ALL_SCORED) | {"leaderboard"}),
}
CODE_EDITS = {
    # file (a line appended to it), the stages it makes stale: those whose code imports it, and their downstream
    "scorers": ("tasks/scoring.py", scored(*ALL_SCORED) | {"leaderboard"}),
    "judges": ("judges/weighting.py", JUDGED),
    "rubric": ("judges/rubrics/longbench_write.yaml", JUDGED),
    # the filters: synthesis, and every trainer and baseline through the Extender's request format
    "method": ("selflengthen/filters.py", ALL_STAGES - NEVER_RUN - scored("base")),
    "baselines": ("selflengthen/baselines/imitation.py", BACKTRANSLATION_DOWN | {"imitation/data"}),
    "final data": ("selflengthen/final_data.py", {f"{FINAL}/data", f"{FINAL}/train", "leaderboard"} | scored(FINAL)),
    "merging": ("selflengthen/merge.py", {f"{SL}/train_generator", f"{SL}/train_extender", f"{FINAL}/train",
                                          "backtranslation/train", "leaderboard"}
                | scored(SL_RUN, FINAL, "backtranslation")),
}
PACKAGES = ("harness", "infra", "tasks", "judges", "selflengthen", "leaderboard")


def plan_statuses(config: Path) -> dict[str, str]:
    """`selflengthen run CONFIG --plan --json`, in this process (a subprocess spends seconds importing)."""
    sigterm = signal.getsignal(signal.SIGTERM)
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            assert main(["run", str(config), "--plan", "--json"]) == 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return {stage["name"]: stage["status"] for stage in json.loads(stdout.getvalue())["stages"]}


def assert_exactly_stale(statuses: dict[str, str], stale: set[str]) -> None:
    assert set(statuses) == ALL_STAGES
    assert {name for name, status in statuses.items() if status == "stale"} == stale
    assert {name: status for name, status in statuses.items() if name not in stale} == {
        name: "todo" if name in NEVER_RUN else "done" for name in ALL_STAGES - stale}


def stamps(paths: list[Path]) -> dict[Path, int]:
    """mtime of every file at or under `paths`."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else [])]
    return {f: f.stat().st_mtime_ns for f in files if f.is_file()}


def judge_cache(run_dir: Path) -> tuple[int, int]:
    """The judge cache file's identity: the tiny random judge never writes a usable reply, so its cache
    stays empty; a kept file keeps its inode and mtime, a deleted one comes back as a new file."""
    stat = (run_dir / "judge_cache.sqlite").stat()
    return stat.st_ino, stat.st_mtime_ns


def test_an_unchanged_copy_plans_every_stage_done_though_its_input_files_moved(finished_experiment, tiny_model_dir,
                                                                              tmp_path):
    assert_exactly_stale(plan_statuses(copy_finished(finished_experiment, tmp_path, tiny_model_dir)), set())


@pytest.mark.parametrize("kind", list(CHANGES))
def test_one_changed_field_plans_its_stage_and_its_downstream_stale_and_the_rest_done(finished_experiment,
                                                                                       tiny_model_dir, tmp_path, kind):
    change, stale = CHANGES[kind]
    assert_exactly_stale(plan_statuses(copy_finished(finished_experiment, tmp_path, tiny_model_dir, change)), stale)


@pytest.mark.parametrize("kind", list(FILE_EDITS))
def test_an_input_file_edited_in_place_at_the_same_size_plans_its_readers_stale(finished_experiment, tiny_model_dir,
                                                                                tmp_path, kind):
    name, old, new, stale = FILE_EDITS[kind]
    config = copy_finished(finished_experiment, tmp_path, tiny_model_dir)
    file = tmp_path / "inputs" / name
    text = file.read_text()
    assert old in text and len(old) == len(new)
    file.write_text(text.replace(old, new, 1))
    assert file.stat().st_size == len(text.encode())
    assert_exactly_stale(plan_statuses(config), stale)


@pytest.mark.parametrize("kind", list(CODE_EDITS))
def test_an_edit_to_the_code_that_computes_a_stage_plans_it_and_its_downstream_stale(finished_experiment,
                                                                                     tiny_model_dir, tmp_path, kind):
    name, stale = CODE_EDITS[kind]
    config = copy_finished(finished_experiment, tmp_path, tiny_model_dir)
    source = tmp_path / "source"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    with (source / name).open("a") as file:
        file.write("\n# an edit\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(source)}
    result = subprocess.run([sys.executable, "-c", "import harness.cli, judges, sys; print(judges.__file__, "
                             "file=sys.stderr); sys.exit(harness.cli.main())", "run", str(config), "--plan",
                             "--json"], capture_output=True, text=True, env=env, cwd=source, timeout=300)
    assert result.returncode == 0 and result.stderr.startswith(str(source)), result.stderr[-2000:]
    statuses = {stage["name"]: stage["status"] for stage in json.loads(result.stdout)["stages"]}
    assert_exactly_stale(statuses, stale)


@dataclasses.dataclass
class Rerun:
    """A changed copy re-run: each stage's marker and output stamps before, and after with its fingerprint."""

    folder: Path
    stale: set[str]
    before: dict
    judge_cache: dict[Path, set[str]]
    stderr: str = ""
    after: dict = dataclasses.field(default_factory=dict)
    after_plan: dict = dataclasses.field(default_factory=dict)


def snapshot(config: Path, with_fingerprint: bool) -> dict:
    stages = plan_stages(load_experiment(config))[0]
    return {s.name: (read_marker(s.marker), *([s.fingerprint] if with_fingerprint else []),
                     stamps([s.marker] + s.outputs)) for s in stages}


@pytest.fixture(scope="module")
def reruns(finished_experiment, tiny_model_dir, tmp_path_factory) -> dict[str, Rerun]:
    """The changes in RERUN, re-run side by side (each mostly waits on one core)."""
    started = {}
    for kind in RERUN:
        change, stale = CHANGES[kind]
        folder = tmp_path_factory.mktemp(kind)
        config = copy_finished(finished_experiment, folder, tiny_model_dir, change)
        runs = [folder / "exp" / "runs" / name for name in (SL_RUN.replace("/", "-"), "backtranslation")]
        rerun = Rerun(folder, stale, snapshot(config, False), {run: judge_cache(run) for run in runs})
        time.sleep(0.01)  # a redone file's mtime differs from the one it replaces
        started[kind] = (rerun, config, cli_process(config))
    for rerun, config, process in started.values():
        _, rerun.stderr = process.communicate(timeout=900)
        assert process.returncode == 0, rerun.stderr[-4000:]
        rerun.after = snapshot(config, True)
        rerun.after_plan = plan_statuses(config)
    return {kind: rerun for kind, (rerun, _, _) in started.items()}


def cli_process(config: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


@pytest.mark.parametrize("kind", RERUN)
def test_a_rerun_names_every_stale_stage_then_leaves_every_stage_done(reruns, kind):
    rerun = reruns[kind]
    assert {line.split(": stale")[0] for line in rerun.stderr.splitlines() if ": stale" in line} == rerun.stale
    assert_exactly_stale(rerun.after_plan, set())


@pytest.mark.parametrize("kind", RERUN)
def test_a_rerun_redoes_the_stale_stages_and_touches_no_done_one(reruns, kind):
    rerun = reruns[kind]
    for name, (marker, fingerprint, files) in rerun.after.items():
        if name in NEVER_RUN:
            continue
        assert marker and marker["finished"] and marker["fingerprint"] == fingerprint, name
        old_marker, old_files = rerun.before[name]
        if name in rerun.stale:
            assert old_marker["fingerprint"] != fingerprint, name
            redone = {(f, t) for f, t in old_files.items() if not f.name.startswith("requests_cache")}
            if name != "leaderboard":  # the board is re-rendered on every run
                assert not redone & set(files.items()), f"{name} kept an old output"
        else:
            assert (old_marker, old_files) == (marker, files), f"{name} was touched though done"


@pytest.mark.parametrize("kind", RERUN)
def test_a_rerun_keeps_the_judge_cache_of_unchanged_judge_settings(reruns, kind):
    for run, identity in reruns[kind].judge_cache.items():
        assert judge_cache(run) == identity, run


def test_a_stale_synthesis_is_moved_aside_not_reused(reruns):
    assert (reruns["synthesis"].folder / "exp" / "train" / "self_lengthen" / "iter_1.stale" / "stage.json").is_file()


def test_an_eval_rerun_generates_with_the_new_setting(reruns):
    for name in (SL_RUN.replace("/", "-"), "backtranslation"):
        results = json.loads((reruns["eval"].folder / "exp" / "runs" / name / "lm_eval" / "results.json").read_text())
        assert results["config"]["gen_kwargs"]["max_gen_toks"] == 6


def test_a_rerun_with_more_documents_answers_the_old_one_from_the_kept_request_cache(reruns):
    for name in (SL_RUN.replace("/", "-"), "backtranslation"):
        log = (reruns["scored documents"].folder / "exp" / "runs" / name / "lm_eval" / "lm_eval.log").read_text()
        assert "Cached requests: 1, Requests remaining: 1" in log
        scores = json.loads((reruns["scored documents"].folder / "exp" / "runs" / name / "scores.json").read_text())
        assert scores["tasks"]["longbench_write_en_mini"]["n"] == 2


def test_a_generation_change_drops_the_request_cache(reruns):
    for kind in ("synthesis", "eval"):
        log = (reruns[kind].folder / "exp" / "runs" / SL_RUN.replace("/", "-") / "lm_eval" / "lm_eval.log").read_text()
        assert "Cached requests: 0, Requests remaining: 1" in log


def test_an_added_task_is_scored_and_judged_alone_and_the_done_tasks_scores_and_judgements_are_kept(
        finished_experiment, tiny_model_dir, tmp_path):
    config = copy_finished(finished_experiment, tmp_path, tiny_model_dir, {"tasks": [TASK, "longen_mini"]})
    added = {f"{kind}/longen_mini/{c}" for kind in ("score", "judge") for c in (*ALL_SCORED, "imitation")}
    planned = plan_statuses(config)
    assert set(planned) == ALL_STAGES | added
    assert {name for name, status in planned.items() if status == "todo"} == NEVER_RUN | added
    assert {name for name, status in planned.items() if status == "stale"} == {"leaderboard"}  # it reads every task
    runs = tmp_path / "exp" / "runs"
    kept = stamps([runs / name / "lm_eval" / f"samples_{TASK}.jsonl" for name in ("base", "backtranslation")]
                  + [runs / name / f"{kind}.{TASK}.stage.json" for name in ("base", "backtranslation")
                     for kind in ("score", "judge")])
    before = {report: json.loads((runs / "base" / report).read_text())["tasks"][TASK]
              for report in ("scores.json", "judgements.json")}
    process = cli_process(config)
    _, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-4000:]
    assert stamps(list(kept)) == kept  # the done task was neither scored nor judged again, nor its stages touched
    assert all((runs / name / "lm_eval" / "samples_longen_mini.jsonl").is_file() for name in ("base", "backtranslation"))
    for report, entry in before.items():
        tasks = json.loads((runs / "base" / report).read_text())["tasks"]
        assert set(tasks) == {TASK, "longen_mini"} and tasks[TASK] == entry, report
    assert json.loads((runs / "base" / "run.json").read_text())["tasks"] == [TASK, "longen_mini"]
    after = plan_statuses(config)
    assert {name for name, status in after.items() if status != "done"} == NEVER_RUN | {
        "score/longen_mini/imitation", "judge/longen_mini/imitation"}


def test_a_deleted_scores_json_is_scored_again_and_nothing_else_is_touched(finished_experiment, tiny_model_dir,
                                                                           tmp_path):
    config = copy_finished(finished_experiment, tmp_path, tiny_model_dir)
    scores = tmp_path / "exp" / "runs" / "base" / "scores.json"
    before = json.loads(scores.read_text())["tasks"]
    scores.unlink()
    rescored = f"score/{TASK}/base"
    assert {name for name, status in plan_statuses(config).items() if status != "done"} == NEVER_RUN | {rescored}
    untouched = snapshot(config, False)
    process = cli_process(config)
    _, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-4000:]
    assert json.loads(scores.read_text())["tasks"] == before  # greedy answers, from the kept request cache
    after = snapshot(config, False)
    assert {name for name in after if after[name] != untouched[name]} == {rescored, "leaderboard"}
    assert_exactly_stale(plan_statuses(config), set())
