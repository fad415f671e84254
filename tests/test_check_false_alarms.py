"""How often does `selflengthen check` fail two identical models? At most the nominal 5%.

One score file: the real benchmark rows of examples/gpu.yaml's tasks (LongBench-Write 120, LonGen 240,
LongWrite-Ruler 48 prompts), answered by one simulated model that writes part of the way toward each
demand (tests/leaderboard_runs.produced_words), scored by the real scorer and built into a leaderboard.
Identical models: the baseline and the candidate each take, for every prompt, the scores of a prompt
drawn at random from that file, within the group a metric averages over (a LonGen constraint type, or
the whole task), so every metric's true difference is zero. Over PAIRS such pairs (fixed seed) the test
counts how often the gate fails them, and how often the old rule would have: every higher-is-better
metric of every task at p < 0.05, uncorrected (LonGen alone then gives overall and four types).
"""

from __future__ import annotations

import numpy as np
import pytest

from infra.journal import write_json_atomically
from leaderboard.build import build_leaderboard
from leaderboard.check import DEFAULT_MAX_DROP, compare_boards
from leaderboard.stats import ALPHA
from tasks.data import load_benchmark
from tasks.scoring import score_predictions
from tests.leaderboard_runs import produced_words

TASKS = ("longbench_write", "longen", "longwrite_ruler")  # examples/gpu.yaml's tasks
PAIRS = 300
SEED = 0
REACH = 0.6  # how far toward each demand the model writes, in log words (0: ~250 words whatever the demand)


@pytest.fixture(scope="module")
def one_score_file(data_dir, tmp_path_factory) -> dict:
    """The leaderboard of one run directory: real rows, the real scorer, one simulated model's answers."""
    rng = np.random.default_rng(SEED)
    scores = {"model": "one-model", "tasks": {}}
    for task in TASKS:
        rows = load_benchmark(task, data_dir)
        demands = score_predictions(task, [{**row, "response": ""} for row in rows])["samples"]
        answered = [{**row, "doc_id": i, "response": " ".join(["word"] * produced_words(rng, d["required_words"], REACH))}
                    for i, (row, d) in enumerate(zip(rows, demands))]
        scores["tasks"][task] = score_predictions(task, answered)
    run = tmp_path_factory.mktemp("one-score-file") / "one-model"
    write_json_atomically(run / "scores.json", scores)
    write_json_atomically(run / "run.json", {"model": "one-model", "arm": "base", "iteration": None, "train_stats": None,
                                         "tasks": list(TASKS)})
    return build_leaderboard([run], base=None)


def resampled(board: dict, rng: np.random.Generator) -> dict:
    """The board with every prompt's sample replaced by a random one of the same group (same doc_id)."""
    row = dict(board["rows"][0])
    row["tasks"] = {}
    for task, entry in board["rows"][0]["tasks"].items():
        by_type = any(spec["type"] is not None for spec in entry["metrics"].values())
        groups: dict = {}
        for sample in entry["samples"]:
            groups.setdefault(sample["type"] if by_type else None, []).append(sample)
        samples = []
        for sample in entry["samples"]:
            group = groups[sample["type"] if by_type else None]
            samples.append({**group[rng.integers(len(group))], "doc_id": sample["doc_id"]})
        row["tasks"][task] = {**entry, "samples": samples}
    return {**board, "rows": [row]}


@pytest.fixture(scope="module")
def false_alarms(one_score_file) -> dict[str, float]:
    """The share of identical pairs that fail the gate, and that the old uncorrected rule would have failed."""
    rng = np.random.default_rng(SEED)
    gate = old_rule = 0
    for _ in range(PAIRS):
        result = compare_boards(resampled(one_score_file, rng), resampled(one_score_file, rng), None, DEFAULT_MAX_DROP)
        assert result.error is None
        gate += result.exit_code == 1
        old_rule += any(c.p < ALPHA and c.drop > c.allowed_drop for c in result.comparisons)
    rates = {"gate": gate / PAIRS, "old_rule": old_rule / PAIRS}
    print(f"\nfalse alarms over {PAIRS} identical pairs: gate {rates['gate']:.1%}, old rule {rates['old_rule']:.1%}")
    return rates


def test_the_simulation_compares_every_higher_is_better_score_but_gates_one_per_task(one_score_file):
    board = one_score_file
    result = compare_boards(resampled(board, np.random.default_rng(1)), resampled(board, np.random.default_rng(2)))
    assert [(c.task, c.metric) for c in result.gated] == [
        ("longbench_write", "S_l"), ("longen", "overall"), ("longwrite_ruler", "S_l")]
    assert {c.metric for c in result.comparisons if not c.selected} >= {"about", "range", "above", "below"}


def test_identical_models_fail_the_gate_at_most_five_percent_of_the_time(false_alarms):
    assert false_alarms["gate"] <= 0.05


def test_the_old_rule_failed_identical_models_more_often_than_five_percent(false_alarms):
    """The measurement has the power to see the problem the gate fixes."""
    assert false_alarms["old_rule"] > 0.05 > false_alarms["gate"]


def test_the_ci_profiles_gate_fails_identical_models_at_most_five_percent_of_the_time():
    """The CI profile's own size and answers: the committed baseline (the final arm's real scores on the
    first 22 prompts of each *_small task), resampled per prompt into PAIRS identical pairs."""
    import json
    from pathlib import Path

    board = json.loads((Path(__file__).parent.parent / "docs/results/ci/self_lengthen-final/leaderboard.json")
                       .read_text())
    rng = np.random.default_rng(SEED)
    failed = sum(compare_boards(resampled(board, rng), resampled(board, rng), None, DEFAULT_MAX_DROP).exit_code == 1
                 for _ in range(PAIRS))
    print(f"\nCI profile: false alarms over {PAIRS} identical pairs: {failed / PAIRS:.1%}")
    assert failed / PAIRS <= 0.05
