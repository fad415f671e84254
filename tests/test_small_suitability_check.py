"""docs/results/small/suitability_check.py reads the candidates a run's judge saw, and sorts replies as
self-instruct does. Its model part runs the in-process engine as the run does (not run here: minutes)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.scripts import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "docs" / "results" / "small" / "suitability_check.py"
ITERATION_1 = REPO / "docs" / "results" / "small" / "state" / "runs_small" / "train" / "self_lengthen" / "iter_1"


def check_script():
    return load_script(SCRIPT, "small_suitability_check")


def test_only_candidates_that_reached_the_judge_are_read_cut_to_their_first_paragraph(tmp_path):
    ledger = tmp_path / "requests.jsonl"
    ledger.write_text("\n".join(json.dumps(r) for r in [
        {"key": "si/en/0/0/write", "text": " Write about rivers.\n\nInstruction 4: more"},
        {"key": "si/en/0/0/judge", "text": "Yes."},
        {"key": "si/en/1/0/write", "text": "x"},  # too short: never judged
        {"key": "gen/si/en/0/0/0", "text": "an answer"},
    ]) + "\n")
    assert check_script().judged_candidates(ledger) == [("si/en/0/0", "Write about rivers.", "Yes.")]


def test_a_reply_is_yes_no_or_prose_as_self_instruct_reads_it():
    kind = check_script().reply_kind
    assert [kind(r, ["yes"], ["no"]) for r in ('"yes"', "No.", "Yes, I can write that.", '"no"')] == \
        ["yes", "no", "prose", "no"]


def test_the_committed_iteration_1_ledger_has_the_counts_the_plan_quotes():
    """suitability_check.md quotes 120 judged candidates: 11 yes, 32 no, 77 prose."""
    script = check_script()
    candidates = script.judged_candidates(ITERATION_1 / "requests.jsonl")
    counts = Counter(script.reply_kind(reply, ["yes"], ["no"]) for _, _, reply in candidates)
    assert (len(candidates), counts) == (120, Counter(prose=77, no=32, yes=11))
