"""Text measures and splits the method relies on: word counts, paragraphs, leading parts.

Word count is the mixed English/Chinese measure of the paper's scripts, which is LonGen's:
each CJK character (and CJK/full-width punctuation) counts one, and what remains counts one per
whitespace-separated piece. It is the benchmark's own function, so the two cannot drift apart.
"""

from __future__ import annotations

from tasks.scoring import count_words_longen as count_words  # noqa: F401 - re-exported: the method counts words as LonGen does


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs split on blank lines; on single newlines when that gives two or fewer."""
    paragraphs = _nonempty(text.split("\n\n"))
    if len(paragraphs) <= 2:
        paragraphs = _nonempty(text.split("\n"))
    return paragraphs


def join_paragraphs(paragraphs: list[str]) -> str:
    return "\n\n".join(paragraphs)


def first_half(paragraphs: list[str]) -> list[str]:
    """The first half of the paragraphs (rounded down), but at least one when there is one."""
    return paragraphs[: max(1, len(paragraphs) // 2)]


def leading_fraction(text: str, fraction: float) -> str:
    """The first `fraction` of the blank-line-separated paragraphs of `text` (rounded down)."""
    paragraphs = text.strip().split("\n\n")
    return "\n\n".join(paragraphs[: int(len(paragraphs) * fraction + 1e-9)])


def _nonempty(parts: list[str]) -> list[str]:
    return [part.strip() for part in parts if part.strip()]
