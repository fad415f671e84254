"""LonGen's rules that the method shares with the scorer: how words are counted and what a demand accepts.

The Self-Lengthen method counts words (its filters, the final data's demands) and the backtranslation
arm writes demands exactly as LonGen scores them, so both import these from here; the rest of the
scoring (tasks/scoring.py) can change without touching the stages that train models.
"""

from __future__ import annotations

import re

LONGEN_TYPES = ("about", "range", "above", "below")

# LonGen counts CJK ideographs, CJK punctuation and full-width forms one each.
LONGEN_CJK_CHARS = "\u4e00-\u9fff\u3000-\u303f\uff00-\uffef"
_LONGEN_CJK = re.compile(f"[{LONGEN_CJK_CHARS}]")


def count_words_longen(text: str) -> int:
    """LonGen's word count: each CJK character is a word; the rest is split on whitespace."""
    cjk = len(_LONGEN_CJK.findall(text))
    return cjk + len(_LONGEN_CJK.sub(" ", text).split())


def longen_interval(constraint_type: str, numbers: list[int] | tuple[int, ...]) -> tuple[float, float]:
    """The accepted word interval [a, b]: about N [0.8N, 1.2N]; range [A, B]; above [N, 1.5N]; below [0.5N, N]."""
    n = numbers[0]
    # Integer numerators keep the bounds exact (0.8 * N in floating point is not always exact).
    if constraint_type == "about":
        return n * 4 / 5, n * 6 / 5
    if constraint_type == "range":
        return float(numbers[0]), float(numbers[1])
    if constraint_type == "above":
        return float(n), n * 3 / 2
    return n / 2, float(n)
