"""`run --plan` refuses what `run` refuses, with the same one line, before anything; `eval` refuses the
settings it cannot honour. In-process (`harness.cli.main`): no child process is needed to read an
exit code and stderr, so each case costs milliseconds. A few cases also go through a real child
process, for the exit code and the promise that a refused run never imports the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text(encoding="utf-8"))


def set_field(config: dict, dotted: str, value) -> dict:
    node = config
    *parents, last = dotted.split(".")
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = value
    return config


def experiment(tmp_path: Path, data_dir: Path, **changes) -> Path:
    config = json.loads(json.dumps(TINY))
    config.update(out_dir=str(tmp_path / "out"), data_dir=str(data_dir))
    for dotted, value in changes.items():
        set_field(config, dotted.replace("__", "."), value)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


# (case id, changes to tiny.yaml, fragment the error line must hold)
EXPERIMENT_CASES = [
    ("unknown task", {"tasks": ["hellaswag"]}, "unknown task 'hellaswag'"),
    ("task path", {"tasks": ["../longen"]}, "unknown task '../longen'"),
    ("empty model", {"model": ""}, "model must name a model"),
    ("null model", {"model": None}, "model must be a string"),
    ("missing model folder", {"model": "./no-such-model"}, "model path does not exist"),
    ("empty out_dir", {"out_dir": ""}, "out_dir must name a folder"),
    ("arms null", {"arms": None}, "arms must be a mapping"),
    ("eval an empty list", {"eval": []}, "eval must be a mapping"),
    ("eval a list", {"eval": [1, 2]}, "eval must be a mapping"),
    ("temperature NaN", {"eval__sampling__temperature": float("nan")}, "eval.sampling.temperature must be a finite"),
    ("temperature inf", {"eval__sampling__temperature": float("inf")}, "eval.sampling.temperature must be a finite"),
    ("temperature negative", {"eval__sampling__temperature": -2}, "temperature must be a finite number >= 0"),
    ("top_p 7", {"eval__sampling__top_p": 7}, "top_p must be in (0, 1]"),
    ("top_p 0", {"eval__sampling__top_p": 0}, "top_p must be in (0, 1]"),
    ("synthesis top_p 7", {"self_lengthen__sampling__top_p": 7}, "top_p must be in (0, 1]"),
    ("max_tokens 0", {"self_lengthen__sampling__max_tokens": 0}, "max_tokens must be at least 1"),
    ("num_concurrent negative", {"eval__num_concurrent": -4}, "num_concurrent must be at least 1"),
    ("batch size negative", {"backend__max_batch_size": -1}, "max_batch_size must be at least 1"),
    ("learning rate NaN", {"self_lengthen__train__learning_rate": float("nan")}, "learning_rate must be a finite"),
    ("learning rate negative", {"self_lengthen__train__learning_rate": -1e-4}, "learning_rate must be a finite number >= 0"),
    ("train batch negative", {"imitation__train__per_device_train_batch_size": -1}, "per_device_train_batch_size"),
    ("max_steps zero", {"backtranslation__train__max_steps": 0}, "max_steps must be at least 1"),
    ("unknown rubric", {"judge__rubric": "no_such_rubric"}, "judge.rubric: unknown rubric 'no_such_rubric'"),
    ("missing corpus", {"backtranslation__corpus": "/no/such/corpus.jsonl"}, "backtranslation.corpus: file not found"),
    ("iterations 1e20", {"self_lengthen__iterations": 10**20}, "self_lengthen.iterations is too large"),
    ("iterations 1000", {"self_lengthen__iterations": 1000}, "iterations must be between 1 and 100"),
    ("missing seed file", {"self_lengthen__seed_files": {"en": "/no/seeds.jsonl"}}, "seed_files.en: file not found"),
]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(("changes", "fragment"), [c[1:] for c in EXPERIMENT_CASES], ids=[c[0] for c in EXPERIMENT_CASES])
def test_plan_and_run_refuse_the_same_bad_experiment_with_the_same_line(changes, fragment, tmp_path, data_dir, capsys):
    config = experiment(tmp_path, data_dir, **changes)
    seen = []
    for argv in (["run", str(config), "--plan"], ["run", str(config), "--plan", "--json"], ["run", str(config)]):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        lines = error_lines(captured.err)
        assert len(lines) == 1 and fragment in lines[0], captured.err
        assert captured.out == ""  # no plan printed
        seen.append(lines[0])
    assert len(set(seen)) == 1
    assert not (tmp_path / "out").exists()


def test_a_duplicate_key_is_refused_naming_it_and_its_lines(tmp_path, data_dir, capsys):
    config = experiment(tmp_path, data_dir)
    config.write_text(config.read_text(encoding="utf-8") + "seed: 3\n", encoding="utf-8")
    assert main(["run", str(config), "--plan"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "duplicate key 'seed'" in line and "first at line" in line


def test_an_out_dir_that_is_a_file_is_refused(tmp_path, data_dir, capsys):
    (tmp_path / "taken").write_text("not a folder", encoding="utf-8")
    config = experiment(tmp_path, data_dir, out_dir=str(tmp_path / "taken"))
    assert main(["run", str(config), "--plan"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def eval_config(tmp_path: Path, **sampling) -> str:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({"sampling": sampling}), encoding="utf-8")
    return str(path)


EVAL_CASES = [
    ("temperature NaN", lambda tmp: ["--config", eval_config(tmp, temperature=float("nan"))], "temperature must be a finite"),
    ("temperature -2", lambda tmp: ["--config", eval_config(tmp, temperature=-2)], "temperature must be a finite number >= 0"),
    ("top_p 7", lambda tmp: ["--config", eval_config(tmp, top_p=7)], "top_p must be in (0, 1]"),
    ("out empty", lambda tmp: ["--out", ""], "--out: must not be empty"),
    ("data-dir empty", lambda tmp: ["--data-dir", ""], "--data-dir: must not be empty"),
    ("endpoint not a URL", lambda tmp: ["--endpoint", "localhost-8000"], "endpoint must be an http(s) URL"),
    ("endpoint bad port", lambda tmp: ["--endpoint", "http://127.0.0.1:99999/v1"], "endpoint must be an http(s) URL"),
    ("unknown task", lambda tmp: ["--tasks", "longen_mini,../x"], "unknown task '../x'"),
    ("empty model", lambda tmp: ["--model", " "], "model must name a model"),
    ("out is a file", lambda tmp: ["--out", str(Path(__file__))], "exists and is not a folder"),
]


@pytest.mark.parametrize(("args", "fragment"), [c[1:] for c in EVAL_CASES], ids=[c[0] for c in EVAL_CASES])
def test_eval_refuses_settings_it_cannot_honour_before_generating(args, fragment, tmp_path, capsys):
    argv = ["eval", "--tasks", "longen_mini", "--limit", "1", "--out", str(tmp_path / "run"), *args(tmp_path)]
    assert exit_code(argv) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "run").exists()


def exit_code(argv: list[str]) -> int:
    """main's return code, or the code a flag error exits with."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_a_refused_run_answers_in_under_a_second_without_importing_torch(tmp_path, data_dir):
    config = experiment(tmp_path, data_dir, eval__sampling__top_p=7)
    probe = ("import sys; from harness.cli import main; code = main(['run', sys.argv[1]]); "
             "heavy = [m for m in ('torch', 'transformers', 'lm_eval', 'trl', 'openai', 'scipy') if m in sys.modules]; "
             "print(code, heavy)")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", probe, str(config)], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.stdout.strip() == "2 []", result.stdout + result.stderr
    assert len(error_lines(result.stderr)) == 1
    print(f"refused in {elapsed:.2f} s")  # a figure for the README, not a timed assertion


def test_the_command_line_refuses_a_mistyped_field_with_exit_2_and_one_line(tmp_path, data_dir):
    config = experiment(tmp_path, data_dir, itertions=2)
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(config)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [line for line in result.stderr.splitlines() if line.strip()]
    assert "unknown field 'itertions'" in result.stderr
