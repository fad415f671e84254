"""docs/results/small/schema_check.py reads the candidates the small run's baselines rated and planned, and counts
yields as the arms do. Its model part runs the in-process engine (not run here: minutes)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from selflengthen.baselines.parsing import PlanSection
from tests.scripts import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "docs" / "results" / "small" / "schema_check.py"
TRAIN = REPO / "docs" / "results" / "small" / "state" / "runs_small" / "train"


def check_script():
    return load_script(SCRIPT, "small_schema_check")


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def test_only_pairs_that_reached_self_curation_are_read_with_the_instruction_they_were_rated_with(tmp_path):
    write_jsonl(tmp_path / "requests.jsonl", [
        {"key": "doc/3/instruction/0", "text": "Essay."},
        {"key": "doc/3/instruction/1", "text": "Request: Write about the union of the states."},
        {"key": "doc/4/instruction/0", "text": "Write about taxes."},
    ])
    write_jsonl(tmp_path / "pairs.jsonl", [
        {"key": "doc/3", "outcome": "unrated", "answer": "The text.", "words": 2},
        {"key": "doc/4", "outcome": "too_long", "answer": None, "words": 9000},
    ])
    assert check_script().rated_pairs(tmp_path) == [("doc/3", "Write about the union of the states.", "The text.", 2)]


def test_the_committed_run_has_the_candidates_the_plan_quotes():
    """schema_check.md quotes 63 pairs that reached self-curation and 16 instructions planned."""
    script = check_script()
    assert (len(script.rated_pairs(TRAIN / "backtranslation")), len(script.planned_instructions(TRAIN / "imitation"))) \
        == (63, 16)


def test_rating_yields_count_each_unparsed_retry_as_a_reply_and_keep_at_the_minimum_rating():
    yields = check_script().rating_yields([5, 4, 2, None], Counter({"rating.unparsed": 5}), 4)
    assert yields == {"replies parsed": "3 of 8", "pairs rated": "3 of 4", "pairs kept": "2 of 4",
                      "most common rating": "5 (33%)"}


def test_plan_yields_count_plans_with_too_few_sections_as_parsed_but_not_usable():
    plan = [PlanSection(1, "a", 100), PlanSection(2, "b", 300)]
    yields = check_script().plan_yields([plan, None], Counter({"plan.unparsed": 3, "plan.too_few_sections": 1}))
    assert yields == {"replies parsed": "2 of 5", "usable plans": "1 of 2", "median sections": 2,
                      "median planned words": 400}
