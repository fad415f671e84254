"""leaderboard.json on disk: its text, validated reading, and per-prompt values of a metric.

The file is the truth; every view and the regression check read it through these functions.
Shape: {"version", "created", "base", "tasks": [names], "method": {...}, "length_control": {task: fit},
"rows": [{"id", "model", "arm", "iteration", "train_stats", "is_base", "run_dir",
"tasks": {task: {"n", "primary", "metrics": {name: {"value", "ci", "n", "field", "type",
"higher_is_better", "vs_base", "vs_previous", "demand": {"low", "high", "high_included"} (range metrics
only, leaderboard/demand.py)}}, "judge_failures", "quality_trust": {"reliable", "reasons", "failures", "n",
"failures_rate", "sanity": {degradation: {"rate", "ci", "p_value", "above_chance", "n"}} or null,
"agreement": {"repeats_n", "krippendorff_alpha", "spearman", "mean_std"} or null} or null (task not judged),
"pairwise": {"reference", "judge", "n", "failures", "win_rate", "win_rate_ci", "lc_win_rate", "lc_win_rate_ci",
"position_bias_rate"} (only where pairwise.json judged the task), "samples": [...], "example"}}}]}.
"""

from __future__ import annotations

import json
from pathlib import Path

from leaderboard import validate
from leaderboard.demand import holds
from leaderboard.errors import LeaderboardError
from leaderboard.runs import read_json

VERSION = 1


def board_json(value: dict) -> str:
    """leaderboard.json's text: strict JSON (no NaN), one-space indent."""
    return json.dumps(value, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def load_leaderboard(path: Path) -> dict:
    """Read a leaderboard.json and check every field a reader relies on."""
    return checked_leaderboard(Path(path), read_json(Path(path)))


def checked_leaderboard(path: Path, board: dict) -> dict:
    """``board`` (as read from ``path``) if it is a valid leaderboard, else a LeaderboardError naming the field."""
    if board.get("version") != VERSION or not isinstance(board.get("rows"), list):
        raise LeaderboardError(f"{path}: not a version-{VERSION} leaderboard.json (needs 'version' and 'rows')")
    validate.board_file(path, board)
    return board


def metric_values(task_entry: dict, metric: str) -> dict:
    """{doc_id: value} of one metric in one row's task: the samples' field, filtered by type when the metric is one
    and by demanded words when it is a demand range's."""
    spec = task_entry["metrics"][metric]
    values = {}
    for sample in task_entry["samples"]:
        value = sample.get(spec["field"])
        if value is None or (spec.get("type") is not None and sample.get("type") != spec["type"]):
            continue
        if spec.get("demand") is not None and not holds(spec["demand"], sample.get("required_words")):
            continue
        values[sample["doc_id"]] = float(value)
    return values
