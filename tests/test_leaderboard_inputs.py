"""The hand-made run directories of tests/leaderboard_runs.py follow the run directory contract."""

from __future__ import annotations

from leaderboard.runs import load_run_dir
from tests.leaderboard_runs import MODELS, make_experiment


def test_hand_made_run_dirs_follow_the_run_directory_contract(tmp_path):
    runs = [load_run_dir(path) for path in make_experiment(tmp_path)]
    assert [r.model for r in runs] == [m[0] for m in MODELS]
    assert all(len(r.scores["tasks"]["longen_mini"]["samples"]) == 16 for r in runs)
    assert runs[0].judgements["tasks"]["longbench_write_en_mini"]["failures"] == 1
