"""A finished experiment, one setting changed: `run --plan` says what is stale and `run` redoes exactly that.

One tiny experiment (Self-Lengthen iteration 1 and the backtranslation arm on the tiny random model,
in-process synthesis, lm-eval's hf backend, one document scored and judged per checkpoint) runs once;
each case copies its folder and changes one field. Every case checks `selflengthen run --plan --json`:
`stale` for the changed stage and everything downstream of it, `done` for the rest. Three cases also
re-run for real, side by side: a synthesis field, an eval field and the number of scored documents.
The stale stages are redone (new marker fingerprint, new outputs), the done ones are untouched
(marker and outputs keep their mtimes), and what docs/run_directory.md says is reused is reused: a
stale synthesis is moved aside, lm-eval's request cache survives only an unchanged generation, the
judge cache survives unchanged judge settings. The training, baseline-data and judge cases check
`--plan` only: their re-runs are the same machinery, and each would add a minute on a 2-core machine.
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
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.experiment_config import load_experiment
from harness.plan import plan_stages
from harness.serve import ServerConfig, serve
from harness.stages import read_marker

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SL = "self_lengthen/iter_1"
SL_RUN = f"{SL}/generator"
SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.1, "max_tokens": 12}
UNCAPPED = {k: v for k, v in SAMPLING.items() if k != "max_tokens"}  # backtranslation: per-request lengths
TRAIN = {"max_steps": 1, "warmup_ratio": 0.0, "logging_steps": 1, "max_length": 2048, "torch_threads": 1}

ALL_STAGES = [f"{SL}/synthesis", f"{SL}/train_generator", f"{SL}/train_extender", "backtranslation/data",
              "backtranslation/train", f"score/{SL_RUN}", "score/backtranslation", f"judge/{SL_RUN}",
              "judge/backtranslation", "leaderboard"]
CHANGES = {
    # kind of field: (the change, the stages it makes stale)
    "synthesis": ({"self_lengthen": {"sampling": {**SAMPLING, "temperature": 0.9}}},
                  {f"{SL}/synthesis", f"{SL}/train_generator", f"{SL}/train_extender", f"score/{SL_RUN}",
                   f"judge/{SL_RUN}", "leaderboard"}),
    "training": ({"self_lengthen": {"train": {**TRAIN, "learning_rate": 3e-3}}},
                 {f"{SL}/train_generator", f"{SL}/train_extender", f"score/{SL_RUN}", f"judge/{SL_RUN}",
                  "leaderboard"}),
    "baseline data": ({"backtranslation": {"shown_words": 30}},
                      {"backtranslation/data", "backtranslation/train", "score/backtranslation",
                       "judge/backtranslation", "leaderboard"}),
    "eval": ({"eval": {"max_gen_toks": 6}},
             {f"score/{SL_RUN}", "score/backtranslation", f"judge/{SL_RUN}", "judge/backtranslation", "leaderboard"}),
    "judge": ({"judge": {"max_tokens": 20}}, {f"judge/{SL_RUN}", "judge/backtranslation", "leaderboard"}),
    "scored documents": ({"limit": 2},
                         {f"score/{SL_RUN}", "score/backtranslation", f"judge/{SL_RUN}", "judge/backtranslation",
                          "leaderboard"}),
}
RERUN = ["synthesis", "eval", "scored documents"]


def experiment(tmp_path: Path, model: Path, data_dir: Path, judge_url: str) -> dict:
    """Two trained arms, one document each; the tiny model writes noise, so the filters accept any ending."""
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": f"Write a long essay about topic {i}."}) + "\n" for i in range(2)))
    return {
        "model": str(model),
        "data_dir": str(data_dir),
        "arms": {"base": False, "imitation": False},
        "tasks": ["longbench_write_en_mini"],
        "limit": 1,
        "eval": {"backend": "hf", "num_concurrent": 1, "max_gen_toks": 8},  # in this process: no server to start
        "backend": {"kind": "inprocess", "max_batch_size": 8, "torch_threads": 1},
        "self_lengthen": {
            "iterations": 1, "seed_files": {"en": str(seeds)}, "max_in_flight": 4, "sampling": SAMPLING,
            "self_instruct": {"instructions_per_language": 1, "max_attempts": 1, "include_seeds": True},
            "generator": {"samples_per_instruction": 1, "max_attempts": 1},
            "extender": {"extensions_per_answer": 1, "max_attempts": 2, "rounds": 2, "min_growth": 0.1},
            "filters": {"terminal_punctuation": [""], "drop_short": False},
            "final_data": {"min_words": 1},
            "train": TRAIN,
        },
        "backtranslation": {
            "corpus": str(data_dir / "federalist.jsonl"), "max_documents": 1, "shown_words": 40,
            "instruction_min_words": 1, "instruction_max_tokens": 12, "min_rating": None,
            "tokenizer": str(model), "sampling": UNCAPPED, "train": TRAIN,
        },
        "judge": {"model": str(model), "endpoint": judge_url, "max_tokens": 16, "max_retries": 0, "sanity_subset": 0},
    }


def cli(config: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", str(config), *flags],
                          check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)


def write_config(raw: dict, folder: Path) -> Path:
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump({**raw, "out_dir": str(folder / "exp")}))
    return path


def merged(raw: dict, change: dict) -> dict:
    out = json.loads(json.dumps(raw))
    for section, values in change.items():
        out[section] = {**out.get(section, {}), **values} if isinstance(values, dict) else values
    return out


@pytest.fixture(scope="module")
def judge_url(tiny_model_dir) -> Iterator[str]:
    """One judge server for every run of this file (a speed-only setting: no stage's fingerprint holds it)."""
    with serve(str(tiny_model_dir), ServerConfig(kind="inprocess", torch_threads=1)) as endpoint:
        yield endpoint.base_url


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model_dir, data_dir, judge_url) -> tuple[dict, Path]:
    """The experiment's config and its finished folder."""
    folder = tmp_path_factory.mktemp("finished")
    raw = experiment(folder, tiny_model_dir, data_dir, judge_url)
    result = cli(write_config(raw, folder))
    assert result.returncode == 0, result.stderr[-4000:]
    return raw, folder / "exp"


def changed_copy(finished: tuple[dict, Path], tmp_path: Path, change: dict) -> Path:
    """A copy of the finished experiment and its config with `change`; returns the config's path."""
    raw, exp = finished
    shutil.copytree(exp, tmp_path / "exp", symlinks=True)
    return write_config(merged(raw, change), tmp_path)


def plan_statuses(config: Path) -> dict[str, str]:
    """`selflengthen run CONFIG --plan --json`, in this process (a subprocess spends 15 s importing)."""
    sigterm = signal.getsignal(signal.SIGTERM)
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            assert main(["run", str(config), "--plan", "--json"]) == 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return {stage["name"]: stage["status"] for stage in json.loads(stdout.getvalue())["stages"]}


def stamps(paths: list[Path]) -> dict[Path, int]:
    """mtime of every file at or under `paths`."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else [])]
    return {f: f.stat().st_mtime_ns for f in files if f.is_file()}


def judge_cache(run_dir: Path) -> tuple[int, int]:
    """The judge cache file's identity: the tiny random judge never writes a usable reply, so its cache
    stays empty; a kept file keeps its inode and mtime, a deleted one comes back as a new file."""
    stat = (run_dir / "judge_cache.sqlite").stat()
    return stat.st_ino, stat.st_mtime_ns


def test_an_unchanged_copy_plans_every_stage_done(finished, tmp_path):
    statuses = plan_statuses(changed_copy(finished, tmp_path, {}))
    assert statuses == dict.fromkeys(ALL_STAGES, "done")


@pytest.mark.parametrize("kind", list(CHANGES))
def test_one_changed_field_plans_its_stage_and_its_downstream_stale_and_the_rest_done(finished, tmp_path, kind):
    change, stale = CHANGES[kind]
    statuses = plan_statuses(changed_copy(finished, tmp_path, change))
    assert {name for name, status in statuses.items() if status == "stale"} == stale
    assert {status for name, status in statuses.items() if name not in stale} == {"done"}


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
def reruns(finished, tmp_path_factory) -> dict[str, Rerun]:
    """The changes in RERUN, re-run side by side (each mostly waits on one core)."""
    started = {}
    for kind in RERUN:
        change, stale = CHANGES[kind]
        folder = tmp_path_factory.mktemp(kind)
        config = changed_copy(finished, folder, change)
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
    assert set(rerun.after_plan.values()) == {"done"}


@pytest.mark.parametrize("kind", RERUN)
def test_a_rerun_redoes_the_stale_stages_and_touches_no_done_one(reruns, kind):
    rerun = reruns[kind]
    for name, (marker, fingerprint, files) in rerun.after.items():
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
