"""The filters that keep only well-formed answers, and the dropout that favours long ones.

`trim_unfinished` optionally cuts an answer back to its last finished sentence (a deviation);
`passes_filters` checks one answer (terminal punctuation, no repeated n-gram, no talk about
"the revised version" at its edges); `drop_short` thins a whole population so the training data
leans long: the shortest sample (in words) always goes, the longest nearly always stays.
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from selflengthen.config import FilterConfig
from selflengthen.text import count_words

T = TypeVar("T")


def passes_filters(text: str, lang: str, config: FilterConfig) -> tuple[bool, str]:
    """(True, "ok") for an acceptable answer, else (False, the name of the first failed rule)."""
    text = text.strip()
    if not text:
        return False, "empty"
    if not any(text.endswith(mark) for mark in config.terminal_punctuation):
        return False, "no_terminal_punctuation"
    n = config.ngram_chars if lang == "zh" else config.ngram_words
    if has_repeated_ngram(ngram_units(text, lang), n):
        return False, "repeated_ngram"
    if has_meta_words(text, config.meta_words.get(lang, []), config.head_lines, config.tail_lines):
        return False, "meta_words"
    return True, "ok"


def trim_unfinished(text: str, config: FilterConfig) -> str:
    """`text` cut after its last finished sentence when `config.trim_unfinished` is on, else unchanged.

    A cut-off answer's finished sentences are kept instead of losing the whole answer. A sentence
    ends at a terminal mark that is not a closing quote or bracket ("." "!" "?" "…" "。" ...), with
    any closing quotes or brackets right after it; an ASCII mark counts only before whitespace, so
    "didn't", "3.14" and "U.S.A" are never cut. With no finished sentence the text is returned as
    it is, and the filters reject it.
    """
    text = text.strip()
    if not config.trim_unfinished or any(text.endswith(mark) for mark in config.terminal_punctuation):
        return text
    marks = [mark for mark in config.terminal_punctuation if mark]
    ends = [mark for mark in marks if not any(char in CLOSING_MARKS for char in mark)]
    closers = [mark for mark in marks if mark not in ends]
    if not ends:
        return text
    pattern = rf"(?P<end>(?:{_alternation(ends)})+)(?:{_alternation(closers) if closers else '(?!)'})*"
    cut = 0
    for match in re.finditer(pattern, text):
        after = match.end()
        if not match["end"][-1].isascii() or text[after].isspace():
            cut = after
    return text[:cut] if cut else text


CLOSING_MARKS = frozenset("\"')]}>`”’）】」』»›")
"""Closing quotes and brackets: terminal marks that end a sentence only right after one that ends it."""


def _alternation(marks: list[str]) -> str:
    return "|".join(re.escape(mark) for mark in sorted(marks, key=len, reverse=True))


def ngram_units(text: str, lang: str) -> list[str]:
    """English: lower-cased words, punctuation aside. Chinese: characters, each ASCII run one unit."""
    if lang != "zh":
        return re.findall(r"[\w']+", text.lower())
    units: list[str] = []
    previous_ascii = False
    for char in text:
        if char.isascii() and previous_ascii:
            units[-1] += char
        else:
            units.append(char)
        previous_ascii = char.isascii()
    return units


def has_repeated_ngram(units: Sequence[str], n: int) -> bool:
    seen: set[tuple[str, ...]] = set()
    for start in range(len(units) - n + 1):
        gram = tuple(units[start : start + n])
        if gram in seen:
            return True
        seen.add(gram)
    return False


def has_meta_words(text: str, words: list[str], head_lines: int, tail_lines: int) -> bool:
    """Whether any of `words` appears in the first `head_lines` or last `tail_lines` non-empty lines."""
    if not words:
        return False
    lines = [line for line in text.splitlines() if line.strip()]
    edges = "\n".join(lines[:head_lines] + lines[max(0, len(lines) - tail_lines) :]).lower()
    ascii_words = [re.escape(w.lower()) for w in words if w.isascii()]
    if ascii_words and re.search(rf"\b(?:{'|'.join(ascii_words)})s?\b", edges):
        return True
    return any(word in edges for word in words if not word.isascii())


def keep_probability(shorter: int, total: int) -> float:
    """Chance to keep a sample that `shorter` of `total` samples are shorter than: max(0, 1 - 2 r^3)."""
    rank = 1 - shorter / total
    return max(0.0, 1 - 2 * rank**3)


def drop_short(
    samples: Sequence[T], rng: random.Random, length: Callable[[T], int] = count_words
) -> list[T]:
    """Keep each sample with `keep_probability` of its length rank (in words), in the given order.

    A population whose samples all have one length (a single sample, say) has no short ones to
    drop and is kept whole; the reference would drop all of it.
    """
    lengths = sorted(length(sample) for sample in samples)
    if not lengths or lengths[0] == lengths[-1]:
        return list(samples)
    kept = []
    for sample in samples:
        shorter = bisect.bisect_left(lengths, length(sample))
        if rng.random() < keep_probability(shorter, len(samples)):
            kept.append(sample)
    return kept
