"""Drafts for n-gram speculative decoding: what followed the latest earlier occurrence of a row's last words.

Why this draft: long answers from a small model repeat themselves (in the small experiment's answers,
76 % of the words are what followed the previous occurrence of the three words before them), and a
repeated phrase or a loop is exactly what a lookup in the row's own prompt and output predicts. It is
vLLM's `ngram` proposer and transformers' prompt lookup: no second model, nothing shared between rows.
"""

from __future__ import annotations


class NgramDrafter:
    """One row's context and an index of where each of its n-grams last ended, kept up to date as it grows.

    `propose(count)` looks up the row's last `longest` tokens, then shorter suffixes down to `shortest`,
    and returns up to `count` tokens that followed that n-gram's latest earlier occurrence.
    """

    def __init__(self, prompt_ids: list[int], longest: int, shortest: int) -> None:
        self.context = list(prompt_ids)
        self.longest, self.shortest = longest, shortest
        self._latest: dict[tuple[int, ...], int] = {}
        self._indexed = 0  # n-grams ending before this position are in `_latest`

    def extend(self, tokens: list[int]) -> None:
        self.context.extend(tokens)

    def propose(self, count: int) -> list[int]:
        context, length = self.context, len(self.context)
        # Index every n-gram that something follows; the suffix itself ends at `length` and is not indexed yet.
        for end in range(max(self._indexed, self.shortest), length):
            for n in range(self.shortest, min(self.longest, end) + 1):
                self._latest[tuple(context[end - n:end])] = end
        self._indexed = max(self._indexed, length)
        for n in range(min(self.longest, length), self.shortest - 1, -1):
            end = self._latest.get(tuple(context[length - n:]))
            if end is not None:
                return context[end:end + count]
        return []
