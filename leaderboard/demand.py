"""Length following by demand range: which prompts a range holds, and how its metrics are named.

A task declares its ranges in its YAML (`metadata.demand_ranges`, tasks/metadata.py); the harness hands them
to build_leaderboard. A range's primary score and mean words are ordinary metrics of the task, named
`S_l@[0,500)` and filtered by the samples' `required_words`, so the bootstrap, the paired tests, the
regression check (`--metric 'S_l@[0,500)'`) and every view treat them like any other metric. A range holds
its low end; the last one holds its high end too, so a benchmark's largest demand falls in it.
"""

from __future__ import annotations

from leaderboard.validate import is_number

SEPARATOR = "@"


def demand_spec(bounds: list[int], last: bool) -> dict:
    """A metric's `demand`: the range's bounds in words, and whether it holds its high end (the last range)."""
    return {"low": bounds[0], "high": bounds[1], "high_included": last}


def range_label(demand: dict) -> str:
    """'[0,500)', or '[4000,20000]' for a last range."""
    return f"[{demand['low']},{demand['high']}{']' if demand['high_included'] else ')'}"


def range_metric(metric: str, demand: dict) -> str:
    """The name of ``metric`` over one range: 'S_l@[0,500)'."""
    return f"{metric}{SEPARATOR}{range_label(demand)}"


def holds(demand: dict, required_words) -> bool:
    """Whether a prompt demanding ``required_words`` (a number, else never) falls in the range."""
    if not is_number(required_words) or required_words < demand["low"]:
        return False
    return required_words < demand["high"] or (demand["high_included"] and required_words == demand["high"])
