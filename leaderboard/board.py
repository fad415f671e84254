"""leaderboard.json on disk: atomic writing, validated reading, and per-prompt values of a metric.

The file is the truth; every view and the regression check read it through these functions.
Shape: {"version", "created", "base", "tasks": [names], "method": {...}, "length_control": {task: fit},
"rows": [{"id", "model", "arm", "iteration", "train_stats", "is_base", "run_dir",
"tasks": {task: {"n", "primary", "metrics": {name: {"value", "ci", "n", "field", "type",
"higher_is_better", "vs_base"}}, "judge_failures", "samples": [...], "example"}}}]}.
"""

from __future__ import annotations

import json
from pathlib import Path

from infra.journal import write_text_atomically
from leaderboard.errors import LeaderboardError
from leaderboard.runs import read_json

VERSION = 1


def write_json_atomic(path: Path, value: dict) -> None:
    """leaderboard.json as written: strict JSON (no NaN), one-space indent, through an atomic write."""
    write_text_atomically(path, json.dumps(value, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def load_leaderboard(path: Path) -> dict:
    """Read a leaderboard.json and check the parts every reader relies on."""
    board = read_json(Path(path))
    if board.get("version") != VERSION or not isinstance(board.get("rows"), list):
        raise LeaderboardError(f"{path}: not a version-{VERSION} leaderboard.json (needs 'version' and 'rows')")
    for row in board["rows"]:
        if not isinstance(row, dict) or not isinstance(row.get("tasks"), dict) or "id" not in row:
            raise LeaderboardError(f"{path}: every row needs an 'id' and a 'tasks' object")
        for task, entry in row["tasks"].items():
            if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
                raise LeaderboardError(f"{path}: row {row['id']!r} task {task!r} has no 'metrics' object")
            if not isinstance(entry.get("samples"), list) or not all(
                    isinstance(s, dict) and "doc_id" in s for s in entry["samples"]):
                raise LeaderboardError(f"{path}: row {row['id']!r} task {task!r} needs a 'samples' list with doc_ids")
            for name, spec in entry["metrics"].items():
                if not isinstance(spec, dict) or not isinstance(spec.get("field"), str):
                    raise LeaderboardError(f"{path}: row {row['id']!r} task {task!r} metric {name!r} has no 'field'")
    return board


def metric_values(task_entry: dict, metric: str) -> dict:
    """{doc_id: value} of one metric in one row's task: the samples' field, filtered by type when the metric is one."""
    spec = task_entry["metrics"][metric]
    values = {}
    for sample in task_entry["samples"]:
        value = sample.get(spec["field"])
        if value is None or (spec.get("type") is not None and sample.get("type") != spec["type"]):
            continue
        values[sample["doc_id"]] = float(value)
    return values
