"""A leaderboard.json written by hand, and the baseline scores the check and bad-input tests compare against."""

from __future__ import annotations


def hand_made_board(scores: list[float], model: str = "sl-iter2", task: str = "longbench_write_en_mini") -> dict:
    """A one-row leaderboard.json written by hand: one task, S_l per prompt (doc_id = position)."""
    samples = [{"doc_id": i, "type": "essay", "required_words": 1000, "words": 900, "score": s, "quality": None}
               for i, s in enumerate(scores)]
    metric = {"value": sum(scores) / len(scores), "ci": None, "n": len(scores), "field": "score", "type": None,
              "higher_is_better": True, "vs_base": None}
    words = metric | {"field": "words", "higher_is_better": None, "value": 900.0}
    return {"version": 1, "created": "2026-11-25T12:00:00+00:00", "base": None, "tasks": [task], "method": {},
            "length_control": {}, "rows": [{"id": model, "model": model, "arm": "self_lengthen", "iteration": 2,
                                            "train_stats": None, "is_base": False, "tasks": {task: {
                                                "n": len(scores), "primary": "S_l", "judge_failures": None,
                                                "metrics": {"S_l": metric, "words": words}, "samples": samples}}}]}


BASELINE = [62.0, 70.5, 55.0, 81.0, 47.5, 90.0, 66.0, 73.5, 58.0, 69.0, 77.5, 52.0]
