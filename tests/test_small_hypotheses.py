"""docs/results/small/hypotheses.py answers H1-H4 from a leaderboard.json built by the real leaderboard code.

The run directories are the small experiment's shape (six rows, 40 prompts on each of its two tasks), every
answer scored by tasks/scoring.py: a looping answer repeats one sentence and was cut by the token cap, the
others are distinct words ending a sentence and ended by themselves.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from infra.journal import write_json_atomically
from leaderboard.build import build_leaderboard
from tasks.scoring import score_predictions
from tests.scripts import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "small" / "hypotheses.py"
LBW, LONGEN = "longbench_write_en_small", "longen_en_small"
LBW_DEMANDS = [40, 50, 60, 80, 100, 120, 160, 200, 250, 300] * 4
LONGEN_DEMANDS = [("about", "around 300 words"), ("range", "200-400 words"), ("above", "more than 400 words"),
                  ("below", "less than 500 words")] * 10
LOOP = "The story went on and on and the sky was blue again. "
ROWS = {"base": ("base", None), "self_lengthen/iter_1/generator": ("self_lengthen", 1),
        "self_lengthen/iter_2/generator": ("self_lengthen", 2), "self_lengthen/final": ("self_lengthen/final", None),
        "backtranslation": ("backtranslation", None), "imitation": ("imitation", None)}


@pytest.fixture(scope="module")
def hypotheses():
    return load_script(SCRIPT, "small_hypotheses")


def answer(words: int, loops: bool) -> str:
    if loops:
        return " ".join((LOOP * (words // 12 + 1)).split()[:words])
    return " ".join("w" + "".join(chr(97 + int(d)) for d in str(i)) for i in range(words)) + "."


def write_run(root: Path, model: str, writes, train_samples: int = 20, unknown_finish: int = 0) -> Path:
    """One run directory; `writes(task, i, demand, rng)` gives (words, loops) for prompt i of a task."""
    arm, iteration = ROWS[model]
    rng = random.Random(model)
    tasks = {}
    for task, demands in ((LBW, LBW_DEMANDS), (LONGEN, LONGEN_DEMANDS)):
        rows = []
        for i, demand in enumerate(demands):
            words, loops = writes(task, i, demand, rng)
            reason = None if i < unknown_finish else ("length" if loops else "stop")
            row = {"doc_id": i, "response": answer(words, loops), "finish_reason": reason}
            if task == LBW:
                row |= {"prompt": f"Write {demand} words about topic {i}.", "length": demand, "type": "essay"}
            else:
                kind, constraint = demand
                row |= {"query": f"Write a story, {constraint}.", "type": kind, "constraint": constraint,
                        "language": "en"}
            rows.append(row)
        tasks[task] = score_predictions(task, rows)
    out = root / model.replace("/", "-")
    out.mkdir(parents=True)
    stats = None if arm == "base" else {"samples": train_samples, "length_demands": 1.0}
    (out / "run.json").write_text(json.dumps({"model": model, "model_path": "/m", "arm": arm, "iteration": iteration,
                                              "train_stats": stats, "tasks": [LBW, LONGEN]}), encoding="utf-8")
    (out / "scores.json").write_text(json.dumps({"model": model, "tasks": tasks}), encoding="utf-8")
    return out


def target(demand) -> int:
    """Words that meet a demand of either task."""
    if isinstance(demand, int):
        return demand
    return {"about": 300, "range": 300, "above": 500, "below": 400}[demand[0]]


def base_like(task, i, demand, rng):
    """The base as issue 23 measured it: ~100 words when it stops, and every other answer a loop to the cap."""
    return (1500, True) if i % 2 else (90 + rng.randrange(20), False)


def follows(task, i, demand, rng):
    return target(demand) + rng.randrange(-5, 6), False


def fixed(words: int, loop_every: int = 0):
    return lambda task, i, demand, rng: (
        (1500, True) if loop_every and i % loop_every == 0 else (words + rng.randrange(-10, 11), False))


def board_file(root: Path, writers: dict, **kwargs) -> Path:
    run_dirs = [write_run(root / "runs", model, writer, **kwargs.get(model, {})) for model, writer in writers.items()]
    path = root / "leaderboard.json"
    write_json_atomically(path, build_leaderboard(run_dirs, base=None))
    return path


WRITERS = {"base": base_like, "self_lengthen/iter_1/generator": fixed(200, loop_every=4),
           "self_lengthen/iter_2/generator": fixed(300, loop_every=8), "self_lengthen/final": follows,
           "backtranslation": fixed(250, loop_every=3), "imitation": fixed(400)}


def run_script(hypotheses, path: Path, capsys) -> tuple[int, str, str]:
    code = hypotheses.main([str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_h1_and_h3_are_the_leaderboards_own_vs_base_tests_in_the_predicted_direction(hypotheses, tmp_path, capsys):
    path = board_file(tmp_path, WRITERS)
    board = json.loads(path.read_text(encoding="utf-8"))
    final = next(r for r in board["rows"] if r["arm"] == "self_lengthen/final")
    code, out, _ = run_script(hypotheses, path, capsys)
    assert code == 0
    for task, metric in ((LBW, "S_l"), (LONGEN, "overall"), (LBW, "repeated_10gram_share")):
        test = final["tasks"][task]["metrics"][metric]["vs_base"]
        assert f"p = {test['p']:.3g} (two-sided), {test['n_pairs']} pairs — **supported**" in out
    assert "H1 overall (both tasks): **supported**" in out
    assert "H3 overall (both tasks): **supported**" in out


def test_h1_needs_both_tasks(hypotheses, tmp_path, capsys):
    def lbw_only(task, i, demand, rng):
        return follows(task, i, demand, rng) if task == LBW else base_like(task, i, demand, rng)

    path = board_file(tmp_path, WRITERS | {"self_lengthen/final": lbw_only})
    _, out, _ = run_script(hypotheses, path, capsys)
    h1 = out.split("## H1")[1].split("## H2")[0]
    assert "longbench_write_en_small S_l" in h1 and h1.count("**supported**") == 1
    assert "H1 overall (both tasks): **not supported**" in h1


def test_h2_averages_only_answers_that_ended_by_themselves(hypotheses, tmp_path, capsys):
    path = board_file(tmp_path, WRITERS, base={"unknown_finish": 4})
    _, out, _ = run_script(hypotheses, path, capsys)
    h2 = out.split("## H2")[1].split("## H3")[0]
    base_line = next(line for line in h2.splitlines() if line.startswith("| base |"))
    # 40 prompts per task, every other one a 1,500-word loop cut by the cap, 4 without a finish reason:
    # 18 self-ended answers per task of 90-109 words; the loops would pull a mean of all answers to ~800.
    cells = [c.strip() for c in base_line.strip("|").split("|")]
    assert [int(c.split(",")[0]) for c in cells[1:]] == [18, 18, 36]
    assert all(90 <= float(c.split(",")[1]) < 110 for c in cells[1:])
    assert "Answers without a known finish reason (left out): base 8." in h2
    assert "H2: **supported**" in h2


def test_h2_needs_growth_at_both_steps(hypotheses, tmp_path, capsys):
    path = board_file(tmp_path, WRITERS | {"self_lengthen/iter_2/generator": fixed(200, loop_every=4)})
    _, out, _ = run_script(hypotheses, path, capsys)
    h2 = out.split("## H2")[1].split("## H3")[0]
    steps = [line for line in h2.splitlines() if line.startswith("- ")]
    assert len(steps) == 2 and float(steps[1].split("p = ")[1].split()[0]) >= 0.05
    assert "H2: **not supported**" in h2


def test_h4_is_the_leaderboards_paired_test_with_the_final_arm_as_reference(hypotheses, tmp_path, capsys):
    path = board_file(tmp_path, WRITERS)
    _, out, _ = run_script(hypotheses, path, capsys)
    # The same comparison from the leaderboard itself: built with the final arm as its base, each baseline's
    # vs_base is baseline minus final over the same prompts.
    flipped = build_leaderboard(sorted((tmp_path / "runs").iterdir()), base="self_lengthen/final")
    for arm in ("backtranslation", "imitation"):
        row = next(r for r in flipped["rows"] if r["arm"] == arm)
        for task, metric in ((LBW, "S_l"), (LONGEN, "overall")):
            test = row["tasks"][task]["metrics"][metric]["vs_base"]
            line = next(line for line in out.splitlines()
                        if line.startswith(f"| {arm} | {task} | {metric} |"))
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert float(cells[5]) == pytest.approx(-test["diff"], rel=1e-3)
            assert cells[6] == f"{test['p']:.3g}" and cells[7] == str(test["n_pairs"])


def test_counts_mark_an_iteration_below_16_generator_examples(hypotheses, tmp_path, capsys):
    path = board_file(tmp_path, WRITERS, **{"self_lengthen/iter_1/generator": {"train_samples": 7}})
    _, out, _ = run_script(hypotheses, path, capsys)
    assert "self_lengthen/iter_1/generator: 7 Generator training examples (below 16)" in out
    assert "self_lengthen/iter_2/generator: 20 Generator training examples\n" in out
    assert "| imitation | 40 | 40 |" in out


def test_baselines_not_scored_yet_leave_only_h4_unanswered(hypotheses, tmp_path, capsys):
    """A run finished in parts: H1-H3 read only base and Self-Lengthen rows, so they are answered as in full."""
    partial = {model: writer for model, writer in WRITERS.items() if model not in ("backtranslation", "imitation")}
    code, out, _ = run_script(hypotheses, board_file(tmp_path / "partial", partial), capsys)
    _, full, _ = run_script(hypotheses, board_file(tmp_path / "full", WRITERS), capsys)
    assert code == 0
    assert out.split("## H1")[1].split("## H4")[0] == full.split("## H1")[1].split("## H4")[0]
    h4 = out.split("## H4")[1]
    assert "| backtranslation | - | - | - | - | - | - | 0 | not scored yet: no row in this leaderboard |" in h4
    assert "| imitation | - |" in h4 and "final higher" not in h4 and "no significant difference" not in h4


def test_a_leaderboard_without_the_final_arm_is_one_error_line(hypotheses, tmp_path, capsys):
    writers = {model: writer for model, writer in WRITERS.items() if model != "self_lengthen/final"}
    path = board_file(tmp_path, writers)
    code, out, err = run_script(hypotheses, path, capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: the leaderboard has 0 rows for final") and err.count("\n") == 1
