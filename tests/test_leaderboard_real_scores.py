"""The leaderboard reads what the real scorer (tasks.scoring) writes for real benchmark rows."""

from __future__ import annotations

import json

import pytest

from infra.journal import write_json_atomically
from leaderboard.build import build_leaderboard
from leaderboard.render_markdown import render_markdown
from tasks.scoring import score_predictions


def first_rows(path, keep, count: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if keep(row)][:count]


def english_longen(data_dir) -> list[dict]:
    """Three English LonGen rows of each constraint type."""
    rows = first_rows(data_dir / "longen.jsonl", lambda r: r["language"] == "en", 240)
    return [row for kind in ("about", "range", "above", "below") for row in [r for r in rows if r["type"] == kind][:3]]


def write_run(root, model: str, arm: str, tasks: dict[str, list[dict]], words_for) -> object:
    """A run dir whose responses are ``words_for(required_words)`` words of plain English."""
    out = root / model
    scores = {"model": model, "tasks": {}}
    for task, rows in tasks.items():
        demands = score_predictions(task, [{**row, "response": ""} for row in rows])["samples"]
        answered = [{**row, "doc_id": i, "response": " ".join(["word"] * words_for(d["required_words"]))}
                    for i, (row, d) in enumerate(zip(rows, demands))]
        scores["tasks"][task] = score_predictions(task, answered)
    write_json_atomically(out / "scores.json", scores)
    write_json_atomically(out / "run.json", {"model": model, "arm": arm, "iteration": None if arm == "base" else 1,
                                         "train_stats": None, "tasks": list(tasks)})
    return out


def test_leaderboard_of_real_scorer_output_on_real_benchmark_rows(data_dir, tmp_path):
    tasks = {
        "longbench_write_en_mini": first_rows(data_dir / "longbench_write_en.jsonl", lambda r: True, 12),
        "longen_mini": english_longen(data_dir),
    }
    base = write_run(tmp_path, "short-writer", "base", tasks, lambda required: 150)
    exact = write_run(tmp_path, "exact-writer", "self_lengthen", tasks, lambda required: int(required))
    board = build_leaderboard([base, exact], base=None)

    exact_row = board["rows"][1]
    longen = exact_row["tasks"]["longen_mini"]
    assert list(longen["metrics"]) == ["overall", "about", "range", "above", "below", "words", "effective_words",
                                       "repeated_10gram_share", "ends_sentence"]  # no finish reason: no ended_at_cap
    assert longen["metrics"]["repeated_10gram_share"]["value"] > 0.99  # "word word word ..." loops
    # Writing exactly the demanded length is inside every LonGen interval and scores S_l = 100.
    assert longen["metrics"]["overall"]["value"] == pytest.approx(1.0)
    assert exact_row["tasks"]["longbench_write_en_mini"]["metrics"]["S_l"]["value"] == pytest.approx(100.0)
    assert longen["metrics"]["overall"]["vs_base"]["significant"]
    assert longen["metrics"]["overall"]["vs_base"]["diff"] > 0
    assert "## longen_mini" in render_markdown(board)
