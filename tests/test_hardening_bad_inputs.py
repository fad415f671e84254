"""Unusable input to score, eval, train, run and judge: exit 2, one `error:` line naming the field or
file, no traceback, and no file that a re-run would take for finished work."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.test_harness_cli_errors import assert_one_line_error, run_main

LBW = {"prompt": "Write 100 words.", "type": "x", "length": 100, "response": "hello world"}
LONGEN = {"query": "Write about 100 words.", "type": "about", "constraint": "about 100 words", "response": "hi"}
MARKUP = "[/bold]"


@dataclass
class BadInput:
    """One row of the table: files to write, the command line, what the error line must name."""

    name: str
    args: Callable[[Path], list[str]]
    names: str | Callable[[Path], str]
    unfinished: tuple[str, ...] = ()  # files (relative to tmp_path) that must not exist afterwards


def jsonl(path: Path, *rows, raw: bytes = b"") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + raw)
    return str(path)


def score(task: str, *rows, raw: bytes = b"") -> Callable[[Path], list[str]]:
    return lambda tmp: ["score", "--task", task, "--input", jsonl(tmp / "preds.jsonl", *rows, raw=raw),
                        "--output", str(tmp / "scores.json")]


def lm_eval_record(filtered_resps, doc=None) -> dict:
    return {"doc_id": 0, "doc": doc if doc is not None else {k: v for k, v in LBW.items() if k != "response"},
            "filtered_resps": filtered_resps}


SCORE_CASES = [
    BadInput("empty file", score("longbench_write"), "holds no rows", ("scores.json",)),
    BadInput("blank lines only", score("longbench_write", raw=b"\n\n  \n"), "holds no rows", ("scores.json",)),
    BadInput("duplicate doc_id", score("longbench_write", {**LBW, "doc_id": 4}, {**LBW, "doc_id": 4}),
             "line 2: duplicate 'doc_id' 4", ("scores.json",)),
    BadInput("length 1e308", score("longbench_write", {**LBW, "length": 1e308}), "line 1: 'length'", ("scores.json",)),
    BadInput("length inf", score("longbench_write", raw=b'{"prompt": "p", "length": Infinity, "response": "r"}\n'),
             "line 1: 'length'", ("scores.json",)),
    BadInput("length nan", score("longbench_write", raw=b'{"prompt": "p", "length": NaN, "response": "r"}\n'),
             "line 1: 'length'", ("scores.json",)),
    BadInput("length negative", score("longbench_write", {**LBW, "length": -100}), "'length'", ("scores.json",)),
    BadInput("length zero", score("longwrite_ruler", {**LBW, "length": 0}), "'length'", ("scores.json",)),
    BadInput("length a word", score("longbench_write", {**LBW, "length": "hundred"}), "'length'", ("scores.json",)),
    BadInput("longen about 0 words", score("longen", {**LONGEN, "constraint": "about 0 words"}),
             "line 1: 'constraint'", ("scores.json",)),
    BadInput("longen 1e308 words", score("longen", {**LONGEN, "constraint": "about " + "9" * 400 + " words"}),
             "'constraint'", ("scores.json",)),
    BadInput("longen range upside down", score("longen", {**LONGEN, "type": "range", "constraint": "300 to 200 words"}),
             "'constraint'", ("scores.json",)),
    BadInput("filtered_resps is a string", score("longbench_write_en", lm_eval_record("hello")),
             "line 1: 'filtered_resps'", ("scores.json",)),
    BadInput("doc is a string", score("longbench_write_en", lm_eval_record(["hi"], doc="Write 100 words.")),
             "line 1: 'doc'", ("scores.json",)),
    BadInput("response is a number", score("longbench_write", {**LBW, "response": 7}), "line 1: no 'response'",
             ("scores.json",)),
    BadInput("not UTF-8", score("longbench_write", LBW, raw=b'{"prompt": "\xff\xfe", "length": 1, "response": "r"}\n'),
             "preds.jsonl line 2: not UTF-8", ("scores.json",)),
    BadInput("output is a directory", lambda tmp: ["score", "--task", "longbench_write", "--input",
                                                   jsonl(tmp / "p.jsonl", LBW), "--output", str(tmp)],
             "is a directory"),
    BadInput("output under a file", lambda tmp: ["score", "--task", "longbench_write", "--input",
                                                 jsonl(tmp / "p.jsonl", LBW), "--output", str(tmp / "p.jsonl" / "s.json")],
             "p.jsonl"),
    BadInput("markup in the input path", lambda tmp: ["score", "--task", "longen", "--input",
                                                      str(tmp / f"{MARKUP}.jsonl"), "--output", str(tmp / "s.json")],
             f"{MARKUP}.jsonl", ("s.json",)),
    BadInput("markup in the task name", score(f"longen{MARKUP}", LONGEN), f"longen{MARKUP}", ("scores.json",)),
]


def config(name: str, text: str | bytes) -> Callable[[Path], str]:
    def write(tmp: Path) -> str:
        path = tmp / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(path)

    return write


EVAL_CASES = [
    BadInput("a word for an int field", lambda tmp: ["eval", "--config", config("eval.yaml", "limit: many\n")(tmp),
                                                     "--out", str(tmp / "run")], "limit", ("run/scores.json",)),
    BadInput("a word for a float field", lambda tmp: ["eval", "--config",
                                                      config("eval.yaml", "server: {startup_timeout: soon}\n")(tmp),
                                                      "--out", str(tmp / "run")], "startup_timeout", ("run",)),
    BadInput("a word for a number flag", lambda tmp: ["eval", "--limit", "many", "--out", str(tmp / "run")],
             "--limit", ("run",)),
    BadInput("non-UTF-8 config", lambda tmp: ["eval", "--config", config("eval.yaml", b"limit: 2 # \xff\n")(tmp),
                                              "--out", str(tmp / "run")], "eval.yaml is not UTF-8", ("run",)),
    BadInput("markup in the config path", lambda tmp: ["eval", "--config", str(tmp / f"{MARKUP}.yaml"),
                                                       "--out", str(tmp / "run")], f"{MARKUP}.yaml", ("run",)),
    BadInput("missing data directory", lambda tmp: ["eval", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m",
                                                    "--data-dir", str(tmp / "nowhere"), "--out", str(tmp / "run")],
             "nowhere", ("run",)),
]


def train_config(tmp: Path, method: dict, model: str = "/nonexistent-model") -> str:
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump({"model": model, "method": {"work_dir": str(tmp / "work"), **method}}))
    return str(path)


def seeds(tmp: Path, data: bytes) -> str:
    path = tmp / "seeds.jsonl"
    path.write_bytes(data)
    return str(path)


TWO_SEEDS = b'{"prompt": "Write a story."}\n{"prompt": "Write an essay."}\n'
TRAIN_CASES = [
    BadInput("a word for iterations", lambda tmp: ["train", train_config(tmp, {"iterations": "two"})],
             "iterations", ("work",)),
    BadInput("a word for temperature", lambda tmp: ["train", train_config(tmp, {"sampling": {"temperature": "warm"}})],
             "temperature", ("work",)),
    BadInput("missing seed file", lambda tmp: ["train", train_config(
        tmp, {"languages": ["en"], "seed_files": {"en": str(tmp / "none.jsonl")}})], "none.jsonl", ("work",)),
    BadInput("non-UTF-8 seed file", lambda tmp: ["train", train_config(
        tmp, {"languages": ["en"], "seed_files": {"en": seeds(tmp, TWO_SEEDS + b'{"prompt": "\xff"}\n')}})],
             "seeds.jsonl line 3: not UTF-8", ("work",)),
    BadInput("malformed seed file", lambda tmp: ["train", train_config(
        tmp, {"languages": ["en"], "seed_files": {"en": seeds(tmp, TWO_SEEDS + b"{oops\n")}})],
             "seeds.jsonl line 3: malformed JSON", ("work",)),
    BadInput("work_dir is a file", lambda tmp: ["train", train_config(
        tmp, {"languages": ["en"], "seed_files": {"en": seeds(tmp, TWO_SEEDS)}, "work_dir": seeds(tmp, TWO_SEEDS)},
        model=str(tmp))], "seeds.jsonl"),
]


def experiment_config(tmp: Path, self_lengthen: dict) -> str:
    path = tmp / "experiment.yaml"
    arms = {"base": False, "self_lengthen": True, "backtranslation": False, "imitation": False}
    path.write_text(yaml.safe_dump({"model": str(tmp), "out_dir": str(tmp / "out"), "arms": arms,
                                    "backtranslation": {"corpus": str(tmp / "corpus.jsonl")},  # required though off
                                    "self_lengthen": self_lengthen}))
    return str(path)


RUN_CASES = [
    BadInput("run: a word for limit", lambda tmp: ["run", config("experiment.yaml", "limit: all\n")(tmp)], "limit", ("out",)),
    BadInput("run: missing seed file", lambda tmp: ["run", experiment_config(
        tmp, {"languages": ["en"], "seed_files": {"en": str(tmp / "none.jsonl")}})], "none.jsonl", ("out",)),
    BadInput("run: non-UTF-8 seed file", lambda tmp: ["run", experiment_config(
        tmp, {"languages": ["en"], "seed_files": {"en": seeds(tmp, b'{"prompt": "\xff"}\n' + TWO_SEEDS)}})],
             "seeds.jsonl line 1: not UTF-8", ("out",)),
]


def run_dir(tmp: Path, scores: bytes | None) -> str:
    path = tmp / "run"
    path.mkdir(exist_ok=True)
    if scores is not None:
        (path / "scores.json").write_bytes(scores)
    return str(path)


JUDGE_CASES = [
    BadInput("run without scores.json", lambda tmp: ["judge", run_dir(tmp, None)], "scores.json not found",
             ("run/judgements.json",)),
    BadInput("malformed scores.json", lambda tmp: ["judge", run_dir(tmp, b'{"tasks": {')], "scores.json line 1: malformed",
             ("run/judgements.json",)),
    BadInput("non-UTF-8 scores.json", lambda tmp: ["judge", run_dir(tmp, b'{"tasks": {"\xff": 1}}')],
             "scores.json is not UTF-8", ("run/judgements.json",)),
    BadInput("scores.json without tasks", lambda tmp: ["judge", run_dir(tmp, b"[1, 2]")], "no 'tasks' mapping",
             ("run/judgements.json",)),
    BadInput("a word for --repeat", lambda tmp: ["judge", run_dir(tmp, b'{"tasks": {}}'), "--repeat", "twice"],
             "--repeat", ("run/judgements.json",)),
    BadInput("a word in the judge config", lambda tmp: ["judge", run_dir(tmp, b'{"tasks": {}}'), "--config",
                                                        config("judge.yaml", "max_concurrency: lots\n")(tmp)],
             "max_concurrency", ("run/judgements.json",)),
    BadInput("markup in the run directory", lambda tmp: ["judge", str(tmp / MARKUP)], MARKUP, ("run/judgements.json",)),
]

ALL_CASES = SCORE_CASES + EVAL_CASES + TRAIN_CASES + RUN_CASES + JUDGE_CASES


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_bad_input_exits_2_with_one_line_naming_it_and_leaves_no_finished_work(case, tmp_path, capsys, monkeypatch):
    result = run_main(case.args(tmp_path), capsys, monkeypatch, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, case.names(tmp_path) if callable(case.names) else case.names)
    for name in case.unfinished:
        assert not (tmp_path / name).exists(), name
