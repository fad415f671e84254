"""Text measures and splits the method relies on: word counts, paragraphs, leading parts.

Word count is the mixed English/Chinese measure of the paper's scripts, which is LonGen's:
each CJK character (and CJK/full-width punctuation) counts one, and what remains counts one per
whitespace-separated piece. It is the benchmark's own function, so the two cannot drift apart.
"""

from __future__ import annotations

import string

from tasks.longen_rules import count_words_longen as count_words  # noqa: F401 - re-exported: the method counts words as LonGen does

_PUNCTUATION = set(string.punctuation) | set("。，！？、；：“”‘’（）《》…")


def normal_reply(reply: str) -> str:
    """A short reply as a yes/no answer is compared: lower case, without spaces and punctuation."""
    return "".join(ch for ch in reply.strip().lower() if ch not in _PUNCTUATION and not ch.isspace())


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs split on blank lines; on single newlines when that gives two or fewer."""
    return [text[start:end].strip() for start, end in _paragraph_spans(text)]


def join_paragraphs(paragraphs: list[str]) -> str:
    return "\n\n".join(paragraphs)


def first_half(paragraphs: list[str]) -> list[str]:
    """The first half of the paragraphs (rounded down), but at least one when there is one."""
    return paragraphs[: max(1, len(paragraphs) // 2)]


def leading_fraction(text: str, fraction: float) -> str:
    """The first `fraction` of the paragraphs of `text` (rounded down), as `split_paragraphs` splits them.

    The text is cut, not re-joined, so the kept part keeps the rewrite's own line breaks.
    """
    spans = _paragraph_spans(text)
    keep = int(len(spans) * fraction + 1e-9)
    return text[: spans[keep - 1][1]].strip() if keep else ""


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-empty paragraph: blank-line-separated, or line by line when that gives two or fewer."""
    spans = _nonempty_spans(text, "\n\n")
    return spans if len(spans) > 2 else _nonempty_spans(text, "\n")


def _nonempty_spans(text: str, separator: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for part in text.split(separator):
        if part.strip():
            spans.append((start, start + len(part)))
        start += len(part) + len(separator)
    return spans
