"""Bad settings are refused before any work starts: exit 2, one line naming the field, nothing written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.test_harness_cli_errors import run_main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(capsys, monkeypatch):
    """`selflengthen ARGS` in this process, from the repository root (refusals need no child process)."""
    return lambda *args: run_main(list(args), capsys, monkeypatch, cwd=ROOT)


def assert_refused(result: subprocess.CompletedProcess, field: str) -> None:
    assert result.returncode == 2, result.stderr
    assert field in result.stderr and "Traceback" not in result.stderr, result.stderr


def experiment(tmp_path: Path, data_dir: Path, **sections) -> Path:
    raw = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text())
    raw.update(out_dir=str(tmp_path / "exp"), data_dir=str(data_dir))
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if isinstance(values, dict) else values
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(("flags", "field"), [
    (["--limit", "0"], "limit"),
    (["--limit", "-1"], "limit"),
    (["--limit", "1e20"], "--limit"),
    (["--num-concurrent", "0"], "num_concurrent"),
    (["--max-gen-toks", "-5"], "max_gen_toks"),
    (["--tasks", ""], "tasks"),
    (["--model", "nobody/no-such-model"], "model"),
])
def test_eval_refuses_bad_flags_before_writing_anything(cli, tmp_path, flags, field):
    out = tmp_path / "run"
    base = ["--model", "smollm2-135m", "--tasks", "longen_mini"]
    result = cli("eval", *base, *flags, "--out", str(out))
    assert_refused(result, field)
    assert not out.exists()


@pytest.mark.parametrize(("section", "values", "field"), [
    ("self_lengthen", {"iterations": 0}, "iterations"),
    ("self_lengthen", {"iterations": -2}, "iterations"),
    ("self_lengthen", {"work_dir": "elsewhere"}, "work_dir"),
    ("judge", {"max_concurrency": 0}, "max_concurrency"),
    ("judge", {"repeat": 1}, "repeat"),
    ("judge", {"cache_path": "x.sqlite"}, "cache_path"),
    ("eval", {"model": "other"}, "model"),
    ("eval", {"tasks": ["longen"]}, "tasks"),
    ("eval", {"data_dir": "/tmp"}, "data_dir"),
    ("eval", {"sampling": {"max_tokens": 64}}, "eval.sampling.max_tokens"),
    ("eval", {"sampling": {"repetition_penalty": 1.1}, "server": {"kind": "transformers"}},
     "eval.sampling.repetition_penalty"),
    ("backend", {"kind": "endpoint"}, "self_lengthen.sampling.repetition_penalty"),
    ("backtranslation", {"sampling": {"max_tokens": 64}}, "backtranslation.sampling.max_tokens is not used"),
    ("arms", {"base": False}, "judge.sanity_scope: base needs arms.base"),
    ("limit", 0, "limit"),
    ("tasks", [], "tasks"),
])
def test_run_refuses_bad_experiment_fields_before_any_work(cli, data_dir, tmp_path, section, values, field):
    result = cli("run", str(experiment(tmp_path, data_dir, **{section: values})))
    assert_refused(result, field)
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("repeat", ["1", "-3"])
def test_judge_refuses_a_repeat_count_before_judging(cli, tmp_path, repeat):
    result = cli("judge", str(tmp_path / "run"), "--repeat", repeat)
    assert_refused(result, "repeat")


def test_unknown_model_fails_fast_naming_the_field(cli, data_dir, tmp_path):
    result = cli("run", str(experiment(tmp_path, data_dir, model="nobody/no-such-model")))
    assert_refused(result, "model: 'nobody/no-such-model'")
    assert not (tmp_path / "exp").exists()


def test_backtranslation_corpus_is_not_demanded_when_that_arm_is_off(cli, data_dir, tmp_path, monkeypatch):
    path = experiment(tmp_path, data_dir, arms={"backtranslation": False})
    raw = yaml.safe_load(path.read_text())
    raw.pop("backtranslation")
    path.write_text(yaml.safe_dump(raw))
    result = cli("run", str(path), "--plan", "--json")
    assert result.returncode == 0, result.stderr
    assert "backtranslation/data" not in result.stdout
