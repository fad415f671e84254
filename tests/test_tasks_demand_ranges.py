"""Each length task declares its demand ranges in its YAML (#38 item 3): the published ones, divided for a
*_mini/*_small variant as its demands are (tasks/minis.py)."""

from __future__ import annotations

import pytest

from tasks import metadata
from tasks.metadata import declared_demand_ranges, demand_ranges
from tasks.minis import MINI_SCALE, MINIS

LONGBENCH_WRITE = [[0, 500], [500, 2000], [2000, 4000], [4000, 20000]]
LONGEN = [[2000, 4000], [4000, 6000], [6000, 8000]]


def test_longbench_write_and_longen_declare_their_published_ranges():
    declared = declared_demand_ranges()
    assert declared["longbench_write"] == declared["longbench_write_en"] == LONGBENCH_WRITE
    assert declared["longen"] == LONGEN


@pytest.mark.parametrize("variant", [name for name, (source, _) in MINIS.items() if source != "longwrite_ruler"])
def test_a_variant_declares_its_benchmarks_ranges_divided_as_its_demands_are(variant):
    source = MINIS[variant][0]
    expected = [[low // MINI_SCALE, high // MINI_SCALE] for low, high in declared_demand_ranges()[source]]
    assert declared_demand_ranges()[variant] == expected


def test_overlapping_ranges_are_refused_naming_the_file(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toy_overlap.yaml").write_text(
        "task: toy_overlap\nmetadata:\n  demand_ranges: [[0, 500], [400, 900]]\n", encoding="utf-8")
    monkeypatch.setattr(metadata, "TASKS_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"tasks/toy/toy_overlap.yaml: metadata.demand_ranges: ranges must ascend"):
        demand_ranges("toy_overlap", "toy")
