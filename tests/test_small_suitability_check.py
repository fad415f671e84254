"""docs/results/small/suitability_check.py reads the candidates a run's judge saw, and sorts replies as
self-instruct does. Its model part runs the in-process engine as the run does (not run here: minutes)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "docs" / "results" / "small" / "suitability_check.py"
ITERATION_1 = REPO / "docs" / "results" / "small" / "state" / "runs_small" / "train" / "self_lengthen" / "iter_1"


def load_script():
    spec = importlib.util.spec_from_file_location("small_suitability_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["small_suitability_check"] = module
    spec.loader.exec_module(module)
    return module


def test_only_candidates_that_reached_the_judge_are_read_cut_to_their_first_paragraph(tmp_path):
    ledger = tmp_path / "requests.jsonl"
    ledger.write_text("\n".join(json.dumps(r) for r in [
        {"key": "si/en/0/0/write", "text": " Write about rivers.\n\nInstruction 4: more"},
        {"key": "si/en/0/0/judge", "text": "Yes."},
        {"key": "si/en/1/0/write", "text": "x"},  # too short: never judged
        {"key": "gen/si/en/0/0/0", "text": "an answer"},
    ]) + "\n")
    assert load_script().judged_candidates(ledger) == [("si/en/0/0", "Write about rivers.", "Yes.")]


def test_a_reply_is_yes_no_or_prose_as_self_instruct_reads_it():
    kind = load_script().reply_kind
    assert [kind(r, ["yes"], ["no"]) for r in ('"yes"', "No.", "Yes, I can write that.", '"no"')] == \
        ["yes", "no", "prose", "no"]


def test_the_committed_iteration_1_ledger_has_the_counts_the_plan_quotes():
    """suitability_check.md quotes 120 judged candidates: 11 yes, 32 no, 77 prose."""
    script = load_script()
    candidates = script.judged_candidates(ITERATION_1 / "requests.jsonl")
    counts = Counter(script.reply_kind(reply, ["yes"], ["no"]) for _, _, reply in candidates)
    assert (len(candidates), counts) == (120, Counter(prose=77, no=32, yes=11))
