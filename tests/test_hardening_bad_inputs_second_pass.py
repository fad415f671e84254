"""The second red-team pass: malformed files and flags that ended in exit 1 (a bare exception), a usage
block, numpy warnings or exit 0 now end in exit 2 with one `error:` line naming the file, field or flag.

score (a prompt that is not text), report (stats, synthesis and stage files of the wrong types),
serve (ports out of range, a busy port), leaderboard and check (huge sample values, empty paths,
argparse errors). All are refused before any work, so they run in this process (`run_main`).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.leaderboard_boards import BASELINE, hand_made_board
from tests.leaderboard_runs import MODELS, make_run_dir
from tests.test_harness_cli_errors import assert_one_line_error, run_main

LBW = {"prompt": "Write 100 words.", "type": "x", "length": 100, "response": "hello world"}
LONGEN = {"query": "Write about 100 words.", "type": "about", "constraint": "about 100 words", "response": "hi"}


@dataclass
class BadInput:
    """One row of the table: what to write under tmp_path and the command line, what the error must name."""

    name: str
    args: Callable[[Path], list[str]]
    names: str


def score(task: str, row: dict) -> Callable[[Path], list[str]]:
    def args(tmp: Path) -> list[str]:
        (tmp / "preds.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
        return ["score", "--task", task, "--input", str(tmp / "preds.jsonl"), "--output", str(tmp / "scores.json")]
    return args


SCORE_CASES = [
    BadInput("score: prompt is a list", score("longbench_write", {**LBW, "prompt": ["Write", "100 words."]}),
             "preds.jsonl line 1: 'prompt' must be a string, got list"),
    BadInput("score: prompt is an int", score("longbench_write_en", {**LBW, "prompt": 7}),
             "preds.jsonl line 1: 'prompt' must be a string, got int"),
    BadInput("score: prompt is an object", score("longwrite_ruler", {**LBW, "prompt": {"text": "x"}}),
             "'prompt' must be a string, got dict"),
    BadInput("score: longen query is a list", score("longen", {**LONGEN, "query": ["a"]}),
             "preds.jsonl line 1: 'query' must be a string, got list"),
    BadInput("score: longen query is an int", score("longen_mini", {**LONGEN, "query": 3}), "'query' must be a string"),
]

SYNTHESIS = {"instructions": 4, "initial_answers": 4, "extended_answers": 3, "generator_examples": 3,
             "extender_examples": 3, "requests": {"sent": 12, "errors": 0}, "rejections": {"extend.meta_words": 1},
             "seconds": 60.0}
STATS = {"items": 8, "samples": 2, "answer_words_mean": 120.5, "outcomes": {"kept": 2, "unrated": 6},
         "rejections": {"rating.unparsed": 4}, "requests": {"sent": 16}, "seconds": 30.0}
MARKER = {"name": "self_lengthen/iter_1/synthesis", "fingerprint": "f", "inputs": {}, "finished": True, "seconds": 70.0}


def report(file: str, **changed) -> Callable[[Path], list[str]]:
    """`report` on an experiment whose `file` (synthesis, stats or marker) has `changed` fields."""
    def args(tmp: Path) -> list[str]:
        out = tmp / "exp"
        documents = {"synthesis": (out / "train/self_lengthen/iter_1/synthesis.json", SYNTHESIS),
                     "stats": (out / "train/backtranslation/stats.json", STATS),
                     "marker": (out / "train/self_lengthen/iter_1/stage.json", MARKER)}
        for kind, (path, document) in documents.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            value = {**document, **changed} if kind == file else document
            path.write_bytes(value if isinstance(value, bytes) else json.dumps(value).encode())
        (out / "experiment.json").write_text("{}", encoding="utf-8")
        return ["report", str(out)]
    return args


def replaced(file: str, raw: bytes | list) -> Callable[[Path], list[str]]:
    """`report` with the whole of `file` replaced by `raw`."""
    def args(tmp: Path) -> list[str]:
        argv = report(file)(tmp)
        path = {"synthesis": "train/self_lengthen/iter_1/synthesis.json", "stats": "train/backtranslation/stats.json",
                "marker": "train/self_lengthen/iter_1/stage.json"}[file]
        (tmp / "exp" / path).write_bytes(raw if isinstance(raw, bytes) else json.dumps(raw).encode())
        return argv
    return args


REPORT_CASES = [
    BadInput("report: synthesis requests is a list", report("synthesis", requests=[12, 0]),
             "synthesis.json: 'requests' must be a JSON object of counts, got list"),
    BadInput("report: synthesis examples is text", report("synthesis", generator_examples="three"),
             "synthesis.json: 'generator_examples' must be a finite number, got \"three\""),
    BadInput("report: synthesis seconds is text", report("synthesis", seconds="1h"), "synthesis.json: 'seconds'"),
    BadInput("report: synthesis rejections is a list", report("synthesis", rejections=["extend.meta_words"]),
             "synthesis.json: 'rejections' must be a JSON object"),
    BadInput("report: a rejection count is text", report("synthesis", rejections={"extend.meta_words": "many"}),
             "synthesis.json: 'rejections.extend.meta_words' must be a finite number"),
    BadInput("report: stats outcomes is a list", report("stats", outcomes=["kept"]),
             "stats.json: 'outcomes' must be a JSON object of counts, got list"),
    BadInput("report: stats requests sent is text", report("stats", requests={"sent": "16"}),
             "stats.json: 'requests.sent' must be a finite number"),
    BadInput("report: stats samples is an object", report("stats", samples={"n": 2}), "stats.json: 'samples'"),
    BadInput("report: stats mean words is true", report("stats", answer_words_mean=True),
             "stats.json: 'answer_words_mean'"),
    BadInput("report: marker seconds is text", report("marker", seconds="70"), "stage.json: 'seconds'"),
    BadInput("report: synthesis is a list", replaced("synthesis", [SYNTHESIS]), "synthesis.json is not a JSON object"),
    BadInput("report: stats is not UTF-8", replaced("stats", b'{"items": "\xff"}'), "stats.json is not UTF-8"),
    BadInput("report: marker is malformed", replaced("marker", b'{"name": '), "stage.json line 1: malformed JSON"),
]


def busy_port(tmp: Path) -> list[str]:
    listening = socket.create_server(("127.0.0.1", 0))
    busy_port.sockets.append(listening)  # held open until the test ends
    return ["serve", str(tmp / "no-model"), "--port", str(listening.getsockname()[1])]


busy_port.sockets = []

SERVE_CASES = [
    BadInput("serve: port -1", lambda tmp: ["serve", "smollm2-135m", "--port", "-1"], "--port must be 1 to 65535"),
    BadInput("serve: port 65536", lambda tmp: ["serve", "smollm2-135m", "--port", "65536"], "got 65536"),
    BadInput("serve: port 70000", lambda tmp: ["serve", "smollm2-135m", "--port", "70000"], "got 70000"),
    BadInput("serve: a word for the port", lambda tmp: ["serve", "smollm2-135m", "--port", "http"], "--port"),
    BadInput("serve: a port in use", busy_port, "Address already in use (another server is listening there"),
]


def run_dir_with(file: str, field: str, value) -> Callable[[Path], list[str]]:
    """`leaderboard` over one run directory whose first LongBench-Write sample has `field` = `value`."""
    def args(tmp: Path) -> list[str]:
        run = make_run_dir(tmp / "runs", *MODELS[1][:6], seed=1)
        document = json.loads((run / file).read_text(encoding="utf-8"))
        document["tasks"]["longbench_write_en_mini"]["samples"][0][field] = value
        (run / file).write_text(json.dumps(document), encoding="utf-8")
        return ["leaderboard", str(run), "--out", str(tmp / "board")]
    return args


def board_with_huge_score(tmp: Path) -> list[str]:
    board = hand_made_board(BASELINE)
    board["rows"][0]["tasks"]["longbench_write_en_mini"]["samples"][0]["score"] = 1.7e308
    (tmp / "candidate.json").write_text(json.dumps(board), encoding="utf-8")
    (tmp / "baseline.json").write_text(json.dumps(hand_made_board(BASELINE)), encoding="utf-8")
    return ["check", "--baseline", str(tmp / "baseline.json"), "--candidate", str(tmp / "candidate.json")]


def one_run(tmp: Path) -> str:
    return str(make_run_dir(tmp / "runs", *MODELS[1][:6], seed=1))


LEADERBOARD_CASES = [
    BadInput("leaderboard: a score of 1.7e308", run_dir_with("scores.json", "score", 1.7e308),
             "samples[0].score must be a number within ±1e+12, got 1.7e+308"),
    BadInput("leaderboard: words of -1.7e308", run_dir_with("scores.json", "words", -1.7e308), "samples[0].words"),
    BadInput("leaderboard: a demand of 1e300", run_dir_with("scores.json", "required_words", 1e300),
             "samples[0].required_words"),
    BadInput("leaderboard: a quality of 1.7e308", run_dir_with("judgements.json", "quality", 1.7e308),
             "judgements.json: tasks['longbench_write_en_mini'].samples[0].quality"),
    BadInput("leaderboard: --out ''", lambda tmp: ["leaderboard", one_run(tmp), "--out", ""],
             "argument --out: must name a file or folder"),
    BadInput("leaderboard: a run directory ''", lambda tmp: ["leaderboard", "", "--out", str(tmp / "board")],
             "argument run_dirs: must name a file or folder"),
    BadInput("leaderboard: no arguments", lambda tmp: ["leaderboard"], "the following arguments are required"),
    BadInput("leaderboard: an unknown flag", lambda tmp: ["leaderboard", one_run(tmp), "--out", str(tmp / "b"), "--x"],
             "unrecognized arguments: --x"),
    BadInput("check: a score of 1.7e308", board_with_huge_score, "candidate.json: rows[0]"),
    BadInput("check: --baseline ''", lambda tmp: ["check", "--baseline", "", "--candidate", "c.json"],
             "argument --baseline: must name a file or folder"),
    BadInput("check: no arguments", lambda tmp: ["check"], "the following arguments are required: --baseline"),
    BadInput("check: a word for --max-drop", lambda tmp: ["check", "--baseline", "a", "--candidate", "b",
                                                          "--max-drop", "lots"], "argument --max-drop"),
]

ALL_CASES = SCORE_CASES + REPORT_CASES + SERVE_CASES + LEADERBOARD_CASES


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_bad_input_exits_2_with_one_error_line_naming_it(case, tmp_path, capsys, monkeypatch):
    try:
        result = run_main(case.args(tmp_path), capsys, monkeypatch, cwd=tmp_path)
    finally:
        while busy_port.sockets:
            busy_port.sockets.pop().close()
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, case.names)
    assert "usage:" not in result.stderr and "Warning" not in result.stderr + result.stdout, result.stderr
    assert not (tmp_path / "scores.json").exists() and not (tmp_path / "board").exists()


def test_a_report_skips_iteration_folders_named_with_other_digits(tmp_path, capsys, monkeypatch):
    argv = report("synthesis")(tmp_path)
    for name in ("iter_²", "iter_١"):  # int() reads "١" as 1, and "²" not at all
        folder = tmp_path / "exp/train/self_lengthen" / name
        folder.mkdir()
        (folder / "synthesis.json").write_text(json.dumps({**SYNTHESIS, "generator_examples": 99}), encoding="utf-8")
    result = run_main(argv, capsys, monkeypatch)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 1 and "| 99 |" not in rows[0]


def test_a_plan_over_a_stage_record_that_is_a_list_treats_it_as_no_record(tmp_path, tiny_model_dir, data_dir,
                                                                         capsys, monkeypatch):
    import yaml

    out = tmp_path / "out"
    config = {"model": str(tiny_model_dir), "out_dir": str(out), "data_dir": str(data_dir),
              "tasks": ["longbench_write_en_mini"], "limit": 1, "judge_enabled": False,
              "arms": {"base": True, "self_lengthen": False, "backtranslation": False, "imitation": False}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (out / "runs/base").mkdir(parents=True)
    (out / "runs/base/scores.json").write_text("{}", encoding="utf-8")
    (out / "runs/base/score.longbench_write_en_mini.stage.json").write_text('["score/longbench_write_en_mini/base", "f"]',
                                                                        encoding="utf-8")
    (out / "runs/base/lm_eval").mkdir()
    (out / "runs/base/lm_eval/samples_longbench_write_en_mini.jsonl").write_text("{}", encoding="utf-8")
    result = run_main(["run", str(tmp_path / "exp.yaml"), "--plan", "--json"], capsys, monkeypatch)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    stages = plan["stages"] if isinstance(plan, dict) else plan
    assert next(s for s in stages if s["name"] == "score/longbench_write_en_mini/base")["status"] == "stale"  # outputs nothing accounts for
