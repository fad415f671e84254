"""One finished tiny experiment for the tests that read or change one (`finished_experiment` in conftest.py).

Every arm on the tiny random model: the base, Self-Lengthen iteration 1 and its final model,
backtranslation and imitation (whose random teacher never writes a usable plan, so the arm is
skipped with the reason), one document of longbench_write_en_mini scored in process (lm-eval's hf
backend) and judged by a judge server the harness starts. Its input files (seed instructions, the
benchmark files with the corpus among them) live in the experiment's folder, so a test copies the
folder and edits a copy; the run takes a few minutes on two cores, so a session runs it once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.1, "max_tokens": 12}
UNCAPPED = {k: v for k, v in SAMPLING.items() if k != "max_tokens"}  # backtranslation: per-request lengths
TRAIN = {"max_steps": 1, "warmup_ratio": 0.0, "logging_steps": 1, "max_length": 2048, "torch_threads": 1}
SEEDS = [f"Write a long essay about topic {i}." for i in range(2)]


def experiment_config(folder: Path, model: Path) -> dict:
    """The experiment whose inputs are in `folder/inputs` and whose outputs go to `folder/exp`.

    The tiny model writes noise, so the filters accept any ending and the final data any length.
    """
    inputs = folder / "inputs"
    return {
        "model": str(model),
        "out_dir": str(folder / "exp"),
        "data_dir": str(inputs / "data"),
        "tasks": ["longbench_write_en_mini"],
        "limit": 1,
        # In the run's process (no server), greedy: lm-eval's hf backend caches only greedy answers, and the
        # re-run tests read what its request cache kept.
        "eval": {"backend": "hf", "num_concurrent": 1, "max_gen_toks": 8, "sampling": {"temperature": 0.0}},
        "backend": {"kind": "inprocess", "max_batch_size": 8, "torch_threads": 1},
        "self_lengthen": {
            "iterations": 1, "seed_files": {"en": str(inputs / "seeds.jsonl")}, "max_in_flight": 4,
            "sampling": SAMPLING,
            "self_instruct": {"instructions_per_language": 1, "max_attempts": 1, "include_seeds": True},
            "generator": {"samples_per_instruction": 1, "max_attempts": 1},
            "extender": {"extensions_per_answer": 1, "max_attempts": 2, "rounds": 2, "min_growth": 0.1},
            "filters": {"terminal_punctuation": [""], "drop_short": False},
            "final_data": {"min_words": 1},
            "train": TRAIN,
        },
        "backtranslation": {
            "corpus": str(inputs / "data" / "federalist.jsonl"), "max_documents": 1, "shown_words": 40,
            "instruction_min_words": 1, "instruction_max_tokens": 12, "min_rating": None,
            "tokenizer": str(model), "sampling": UNCAPPED, "train": TRAIN,
        },
        "imitation": {"max_instructions": 1, "plan_attempts": 1, "plan_max_tokens": 16, "sampling": SAMPLING,
                      "train": TRAIN},
        "judge": {"model": str(model), "max_tokens": 16, "max_retries": 0, "sanity_subset": 0,
                  "server": {"torch_threads": 1}},
    }


def write_inputs(folder: Path, data_dir: Path) -> None:
    """The seed instructions and a copy of the benchmark files (the corpus among them) in `folder/inputs`."""
    inputs = folder / "inputs"
    shutil.copytree(data_dir, inputs / "data")
    for file in (inputs / "data").iterdir():
        file.chmod(0o644)  # the shared data folder is read-only; a test edits its copy
    (inputs / "seeds.jsonl").write_text("".join(json.dumps({"prompt": s}) + "\n" for s in SEEDS))


def write_config(raw: dict, folder: Path) -> Path:
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_cli(config: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", str(config), *flags],
                          check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1500)


def finish(folder: Path, model: Path, data_dir: Path) -> Path:
    """Run the experiment in `folder` to the end; returns the folder (inputs/, exp/, experiment.yaml)."""
    write_inputs(folder, data_dir)
    result = run_cli(write_config(experiment_config(folder, model), folder))
    assert result.returncode == 0, result.stderr[-4000:]
    return folder


def copy_finished(finished: Path, to: Path, model: Path, change: dict | None = None) -> Path:
    """A copy of the finished experiment in `to` (its outputs and its inputs), with `change` merged into its
    config section by section; returns the copy's config path."""
    for name in ("exp", "inputs"):
        shutil.copytree(finished / name, to / name, symlinks=True)
    raw = experiment_config(to, model)
    for section, values in (change or {}).items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return write_config(raw, to)
