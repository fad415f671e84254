"""Length demands: a demand the answer itself satisfies, phrased into its instruction, and recognised there.

The paper's last step teaches length following: each long answer's instruction gets a demand
(about N / A-B / more than N / fewer than N words) that the answer itself satisfies under the
LonGen bounds (about N: [0.8N, 1.2N]; range: [A, B]; above N: [N, 1.5N]; below N: [0.5N, N]).
Numbers are rounded to the coarsest step (2000 or 1000, then 500, 100, 50, 10, 5, 1) that still
satisfies the demand. Phrasings are listed per kind, so a phrasing can never carry the wrong
kind's bounds (the reference's Chinese list is ordered differently from its English one, which
swaps above/below for part of its Chinese data). The final data and the backtranslation arm both
write demands; the leaderboard counts them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from infra.journal import read_jsonl
from selflengthen.config import FinalDataConfig
from tasks.longen_rules import LONGEN_TYPES, longen_interval

PHRASINGS: dict[str, dict[str, list[str]]] = {
    "en": {
        "about": [
            "Write about {n} words.",
            "The answer should be around {n} words long.",
            "Aim for roughly {n} words.",
        ],
        "range": [
            "Write between {low} and {high} words.",
            "The answer should be {low}-{high} words long.",
            "Use {low} to {high} words.",
        ],
        "above": [
            "Write more than {n} words.",
            "The answer should be at least {n} words long.",
            "Use no fewer than {n} words.",
        ],
        "below": ["Write fewer than {n} words.", "Keep the answer under {n} words.", "Use at most {n} words."],
    },
    "zh": {
        "about": ["字数在{n}字左右。", "请写大约{n}字。", "篇幅约为{n}字。"],
        "range": ["字数控制在{low}至{high}字之间。", "请写{low}到{high}字。", "篇幅为{low}-{high}字。"],
        "above": ["字数不少于{n}字。", "请写超过{n}字。", "篇幅至少{n}字。"],
        "below": ["字数不超过{n}字。", "请写少于{n}字。", "篇幅控制在{n}字以内。"],
    },
}

_STEPS = (1000, 500, 100, 50, 10, 5, 1)
_DIGITS = "零一二三四五六七八九"


@dataclass(frozen=True)
class LengthDemand:
    """A length demand: its kind and numbers (one, or low and high for a range)."""

    kind: str
    numbers: tuple[int, ...]

    @property
    def bounds(self) -> tuple[float, float]:
        """The word counts that satisfy the demand, as LonGen scores it."""
        return longen_interval(self.kind, self.numbers)

    def satisfied_by(self, words: int) -> bool:
        low, high = self.bounds
        return low <= words <= high


def choose_length_demand(words: int, rng: random.Random, config: FinalDataConfig) -> LengthDemand:
    """A demand of a kind drawn from `config.type_weights`, with round numbers that `words` satisfies.

    "above N" and "below N" are strict (N < words, words < N) so "more than"/"fewer than" hold
    literally; when no round N fits (a handful of words), the demand falls back to "about".
    """
    kind = rng.choices(list(config.type_weights), weights=list(config.type_weights.values()))[0]
    if kind not in LONGEN_TYPES:
        raise ValueError(f"unknown length demand kind {kind!r}; known: {', '.join(LONGEN_TYPES)}")
    coarse = 2000 if rng.random() < config.coarse_step_probability else 1000
    for candidate_kind in (kind, "about"):
        for step in (coarse, *_STEPS):
            demand = _demand_at_step(candidate_kind, words, step) if step <= words else None
            if demand is not None:
                return demand
    raise ValueError(f"cannot phrase a length demand for {words} words")


def _demand_at_step(kind: str, words: int, step: int) -> LengthDemand | None:
    if kind == "range":
        low = words // step * step
        demand = LengthDemand(kind, (low, max(-(-words // step) * step, low + step)))
    elif kind == "about":
        demand = LengthDemand(kind, (round(words / step) * step,))
    elif kind == "above":
        demand = LengthDemand(kind, ((words - 1) // step * step,))
    else:
        demand = LengthDemand(kind, ((words // step + 1) * step,))
    return demand if min(demand.numbers) > 0 and demand.satisfied_by(words) else None


def phrase_demand(demand: LengthDemand, lang: str, rng: random.Random, config: FinalDataConfig) -> str:
    """The demand in words, in a phrasing of its own kind picked at random."""
    template = rng.choice(PHRASINGS[lang][demand.kind])
    numerals = lang == "zh" and rng.random() < config.chinese_numerals_probability
    shown = [chinese_numeral(n) if numerals else str(n) for n in demand.numbers]
    if demand.kind == "range":
        return template.format(low=shown[0], high=shown[1])
    return template.format(n=shown[0])


def with_length_demand(instruction: str, phrase: str, lang: str, rng: random.Random) -> str:
    """The instruction with the demand put before or after it, punctuated for the language."""
    instruction = instruction.strip()
    if lang == "zh":
        end = "" if instruction[-1:] in "。！？.!?" else "。"
        return f"{phrase}{instruction}" if rng.random() < 0.5 else f"{instruction}{end}{phrase}"
    end = "" if instruction[-1:] in ".!?" else "."
    return f"{phrase} {instruction}" if rng.random() < 0.5 else f"{instruction}{end} {phrase}"


def chinese_numeral(n: int) -> str:
    """A positive integer below 10^8 in Chinese numerals: 2500 -> 二千五百, 12000 -> 一万二千."""
    if not 0 < n < 10**8:
        raise ValueError(f"chinese_numeral handles 1 to 99999999, got {n}")
    high, low = divmod(n, 10000)
    text = _below_ten_thousand(high) + "万" if high else ""
    if low:
        text += ("零" if high and low < 1000 else "") + _below_ten_thousand(low)
    return text[1:] if text.startswith("一十") else text


def _below_ten_thousand(n: int) -> str:
    text, gap = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = n // value % 10
        if digit:
            text += ("零" if gap and text else "") + _DIGITS[digit] + unit
            gap = False
        else:
            gap = True
    return text


def carries_length_demand(instruction: str) -> bool:
    """Whether `instruction` holds a length demand in one of the phrasings above (the final data's and the
    backtranslation arm's); a demand an instruction states in other words is not counted."""
    return any(pattern.search(instruction) for pattern in _DEMAND_PATTERNS)


def length_demand_share(data_file: Path) -> float:
    """The share of a chat-messages JSONL's examples whose last user message carries a length demand:
    what the leaderboard's training-data table shows per arm (0.0 for an empty file)."""
    flags = []
    for record in read_jsonl(Path(data_file)):
        users = [m["content"] for m in record["messages"] if m.get("role") == "user"]
        flags.append(bool(users) and carries_length_demand(users[-1]))
    return sum(flags) / len(flags) if flags else 0.0


def _demand_pattern(template: str) -> re.Pattern:
    number = r"(?:\d+|[" + _DIGITS + "十百千万]+)"
    parts = re.split(r"\{(?:n|low|high)\}", template)
    return re.compile(number.join(re.escape(part) for part in parts))


_DEMAND_PATTERNS = [_demand_pattern(t) for kinds in PHRASINGS.values() for ts in kinds.values() for t in ts]
