"""Drafts for n-gram speculative decoding: what followed the latest earlier occurrence of a row's last words.

Why this draft: long answers from a small model repeat themselves (in the small experiment's answers,
76 % of the words are what followed the previous occurrence of the three words before them), and a
repeated phrase or a loop is exactly what a lookup in the row's own prompt and output predicts. It is
vLLM's `ngram` proposer and transformers' prompt lookup: no second model, nothing shared between rows.
"""

from __future__ import annotations


class NgramDrafter:
    """One row's context and an index of where each of its n-grams last ended, kept up to date as it grows.

    `propose(count)` drafts up to `count` tokens one at a time: each is what followed the latest earlier
    occurrence of the longest suffix (`longest` down to `shortest` tokens) of the context with the drafts
    before it appended. So the draft for a position depends on the text before it only, never on how many
    tokens a step drafts: the sampler uses it to order its draw (`infra.sampler`), which is what keeps a
    seeded text the same whatever the step's draft length.
    """

    def __init__(self, prompt_ids: list[int], longest: int, shortest: int) -> None:
        self.context = list(prompt_ids)
        self.longest, self.shortest = longest, shortest
        self._latest: dict[tuple[int, ...], int] = {}
        self._indexed = 0  # n-grams ending before this position are in `_latest`

    def extend(self, tokens: list[int]) -> None:
        self.context.extend(tokens)

    def propose(self, count: int) -> list[int]:
        context = self.context
        real = len(context)
        # Index every n-gram that something follows; the suffix itself ends at `real` and is not indexed yet.
        for end in range(max(self._indexed, self.shortest), real):
            self._index(end, self._latest)
        self._indexed = max(self._indexed, real)
        drafted: dict[tuple[int, ...], int] = {}  # n-grams that end where a draft follows them
        try:
            while len(context) - real < count:
                token = self._follower(drafted)
                if token is None:
                    break
                self._index(len(context), drafted)
                context.append(token)
            return context[real:]
        finally:
            del context[real:]

    def _index(self, end: int, index: dict[tuple[int, ...], int]) -> None:
        for n in range(self.shortest, min(self.longest, end) + 1):
            index[tuple(self.context[end - n:end])] = end

    def _follower(self, drafted: dict[tuple[int, ...], int]) -> int | None:
        """The token after the latest earlier occurrence of the context's longest indexed suffix."""
        context, length = self.context, len(self.context)
        for n in range(min(self.longest, length), self.shortest - 1, -1):
            suffix = tuple(context[length - n:])
            end = drafted.get(suffix, self._latest.get(suffix))
            if end is not None:
                return context[end]
        return None
