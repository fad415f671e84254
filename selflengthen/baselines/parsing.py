"""Read what a model was asked to write in a form: a rating on a scale, a plan of sections with word budgets.

Models rarely keep to the form, so both parsers accept the usual variations ("Score: 4",
"4/5", "评分：4分"; "1. Intro (300 words)", "Paragraph 1 - Main point: ... - Word count: 400
words", "第1部分 - 主要内容：…… - 字数要求：500字") and return None for anything else, so the
caller can retry and count the failure instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CHINESE_DIGITS = {ch: value for value, ch in enumerate("零一二三四五六七八九")}


def small_number(text: str) -> int | None:
    """An integer below 100 written in digits or Chinese numerals (四, 十二, 二十三); None otherwise."""
    if text.isdigit():
        return int(text)
    if not text or any(ch not in _CHINESE_DIGITS and ch != "十" for ch in text):
        return None
    if "十" not in text:
        return _CHINESE_DIGITS[text] if len(text) == 1 else None
    tens, _, ones = text.partition("十")
    if len(tens) > 1 or len(ones) > 1 or "十" in ones:
        return None
    return (_CHINESE_DIGITS[tens] if tens else 1) * 10 + (_CHINESE_DIGITS[ones] if ones else 0)


# --- ratings -------------------------------------------------------------------------------------

_NUMBER = r"(\d+|[一二三四五六七八九十]+)"
_LABELLED = re.compile(
    rf"(?:(?<![a-z])(?:score|rating|rate|grade)|评分|分数|得分|打分)\W{{0,4}}(?:is|of|为|是)?\W{{0,4}}{_NUMBER}", re.I
)
_OUT_OF = re.compile(rf"{_NUMBER}\s*(?:/|out of|of)\s*(\d+)", re.I)
_POINTS = re.compile(rf"{_NUMBER}\s*分")
_ANY_INTEGER = re.compile(r"(?<![\w.])\d+(?!\w|\.\d)")


def parse_rating(reply: str, scale: int) -> int | None:
    """The rating from 1 to `scale` that `reply` gives, or None when it gives none (or one off the scale).

    Looked for in order: a labelled number ("Score: 4", "评分：四"), "4/5" or "4 out of 5" with
    the right denominator, "4分", and last a reply whose only integer (a number on its own, not
    inside a word like "co3") is on the scale.
    """
    for pattern in (_LABELLED, _POINTS):
        match = pattern.search(reply)
        if match:
            return _on_scale(small_number(match.group(1)), scale)
    for match in _OUT_OF.finditer(reply):
        if int(match.group(2)) == scale:
            return _on_scale(small_number(match.group(1)), scale)
    integers = set(_ANY_INTEGER.findall(reply))
    if len(integers) == 1:
        return _on_scale(int(integers.pop()), scale)
    return None


def _on_scale(value: int | None, scale: int) -> int | None:
    return value if value is not None and 1 <= value <= scale else None


# --- plans ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSection:
    """One planned section: its number in the plan, its main point, its word budget."""

    number: int
    point: str
    words: int


_ITEM = re.compile(
    r"^\s*(?:[#>*•\-]+\s*)*(?:\*\*)?\s*(?:"
    r"(?:paragraph|section|part|step|subtask)\s*(?P<named>\d+)"
    r"|第\s*(?P<chinese>\d+|[一二三四五六七八九十]+)\s*(?:段|部分|节|章|步|项)"
    r"|(?P<plain>\d+)\s*(?:[.)、:：．]|\s-)(?!\d)"
    r")\W*",
    re.I,
)
_RANGE = r"(\d[\d,]*)(?:\s*(?:-|–|—|~|to|至|到)\s*(\d[\d,]*))?"
_ABOUT = r"(?:about|around|approximately|approx\.?|~|约|大约)?"
_LABELLED_BUDGET = re.compile(
    rf"(?:word\s*count|length|words|字数(?:要求)?|篇幅)\s*[:：]?\s*{_ABOUT}\s*{_RANGE}\s*(?:words?|字)?",
    re.I,
)
_UNIT_BUDGET = re.compile(rf"{_ABOUT}\s*{_RANGE}\s*(?:words?|字)", re.I)
_POINT_LABEL = re.compile(r"(?:main\s*points?|主要内容|要点)\s*[:：]", re.I)
_TOTAL = re.compile(r"^\W*(?:total|in total|overall|总|合计|共计)", re.I)
_TRIM = " \t-–—:：|*#()（）[]【】,，;；"


def parse_plan(reply: str, default_words: int | None = None) -> list[PlanSection] | None:
    """The sections of a plan, or None unless it numbers them 1..n in order, each with a word budget.

    With `default_words`, a numbered section that states no budget gets that many words (small
    teachers often list sections without counts); without it such a plan is refused.

    A section starts at a numbered line; unnumbered lines after it (until the next one) belong
    to it, lines before the first are preamble, a "Total: ..." line ends the plan's sections.
    A budget "300-400 words" counts as its midpoint; budgets are read in digits only.
    """
    items: list[tuple[int, str]] = []
    for line in reply.splitlines():
        match = _ITEM.match(line)
        if match:
            number = small_number(match.group("named") or match.group("chinese") or match.group("plain"))
            items.append((number or 0, line[match.end() :]))
        elif _TOTAL.match(line):
            break
        elif items and line.strip():
            items[-1] = (items[-1][0], f"{items[-1][1]} {line.strip()}")
    if not items or [number for number, _ in items] != list(range(1, len(items) + 1)):
        return None
    sections = []
    for number, text in items:
        words, point = _budget(text)
        words = words or default_words
        if not words:
            return None
        sections.append(PlanSection(number, point, words))
    return sections


def _budget(text: str) -> tuple[int | None, str]:
    """(the word budget in `text`, `text` without it and without its labels)."""
    match = _LABELLED_BUDGET.search(text) or _UNIT_BUDGET.search(text)
    if not match:
        return None, text.strip(_TRIM)
    low = int(match.group(1).replace(",", ""))
    high = int(match.group(2).replace(",", "")) if match.group(2) else low
    point = _POINT_LABEL.sub("", text[: match.start()] + " " + text[match.end() :])
    point = re.sub(r"\s*[-–—]\s*$|\(\s*\)|（\s*）", "", point.strip())
    return (low + high) // 2, re.sub(r"\s+", " ", point).strip(_TRIM)
