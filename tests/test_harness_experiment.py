"""`selflengthen run`: every arm trained, scored, judged and ranked; a re-run does nothing twice.

Reads the session's finished tiny experiment (tests/finished_experiment.py), and re-runs a copy of it.
"""

from __future__ import annotations

import json
import pytest

from tests.finished_experiment import copy_finished, run_cli

pytestmark = pytest.mark.slow

NAMES = ["base", "self_lengthen/iter_1/generator", "self_lengthen/final", "backtranslation"]


def test_run_trains_scores_judges_and_ranks_every_arm(finished_experiment):
    out = finished_experiment / "exp"
    summary = json.loads((out / "experiment.json").read_text())
    assert [c["name"] for c in summary["checkpoints"]] == NAMES
    # The random tiny teacher never writes a usable plan: the arm is skipped with the reason, not faked.
    assert "no training sample" in summary["skipped"]["imitation"]
    for name in NAMES:
        run_dir = out / "runs" / name.replace("/", "-")
        scores = json.loads((run_dir / "scores.json").read_text())
        assert scores["tasks"]["longbench_write_en_mini"]["n"] == 1
        judged = json.loads((run_dir / "judgements.json").read_text())["tasks"]["longbench_write_en_mini"]
        assert judged["n"] == 1 and judged["failures"] + sum(s["quality"] is not None for s in judged["samples"]) == 1
        assert json.loads((run_dir / "run.json").read_text())["model"] == name
    board = json.loads((out / "leaderboard" / "leaderboard.json").read_text())
    assert sorted(row["model"] for row in board["rows"]) == sorted(NAMES)
    registered = json.loads((out / "train" / "self_lengthen" / "checkpoints.json").read_text())
    assert [c["name"] for c in registered] == ["iter_1/generator", "final"]  # as `selflengthen train` registers them
    assert "backtranslation" in (out / "leaderboard" / "leaderboard.md").read_text()


def test_the_final_arm_is_the_base_fine_tuned_on_every_iterations_answers_with_length_demands(finished_experiment):
    out = finished_experiment / "exp"
    final = out / "train" / "self_lengthen" / "final"
    rows = [json.loads(line) for line in (final / "final_data.jsonl").read_text().splitlines()]
    stats = json.loads((final / "adapter" / "train_stats.json").read_text())
    assert rows and stats["samples"] == len(rows) and stats["init_adapter"] is None  # from the base, not iteration 1
    run = json.loads((out / "runs" / "self_lengthen-final" / "run.json").read_text())
    assert (run["arm"], run["iteration"]) == ("self_lengthen/final", None)


def test_the_training_data_table_shows_which_arms_instructions_carry_length_demands(finished_experiment):
    board = json.loads((finished_experiment / "exp" / "leaderboard" / "leaderboard.json").read_text())
    demands = {row["model"]: (row["train_stats"] or {}).get("length_demands") for row in board["rows"]}
    assert demands == {"base": None, "self_lengthen/iter_1/generator": 0.0, "self_lengthen/final": 1.0,
                       "backtranslation": 1.0}
    markdown = (finished_experiment / "exp" / "leaderboard" / "leaderboard.md").read_text()
    table = markdown.split("## Training data per arm")[1].split("\n## ")[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("|")]
    column = rows[0].index("share with a length demand")
    assert {row[0]: row[column] for row in rows[2:]} == {"self_lengthen/iter_1/generator": "0.00",
                                                          "self_lengthen/final": "1.00", "backtranslation": "1.00"}


def test_a_rerun_of_a_finished_experiment_does_no_work(finished_experiment, tiny_model_dir, tmp_path):
    config = copy_finished(finished_experiment, tmp_path, tiny_model_dir)
    out = tmp_path / "exp"
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*.json")}
    second = run_cli(config)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "scoring" not in second.stderr and "judging" not in second.stderr and "stale" not in second.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*.json")} == stamps

