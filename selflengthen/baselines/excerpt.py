"""The beginning or the end of a long text, cut at whole words, for prompts that cannot show all of it.

Words are the units of `selflengthen.text.count_words`: a CJK character, or a run of other
non-space characters, so "300 words" means the same in both languages as everywhere else.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]|[^\s\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]+")


def beginning(text: str, words: int) -> str:
    """The first `words` words of `text`, cut after the last of them."""
    for index, match in enumerate(_WORD.finditer(text)):
        if index == words - 1:
            return text[: match.end()]
    return text


def ending(text: str, words: int) -> str:
    """The last `words` words of `text`, from the first of them."""
    starts = [match.start() for match in _WORD.finditer(text)]
    return text[starts[-words]:] if len(starts) > words else text
