"""JSON-schema constrained decoding for the in-process engine, with llguidance.

One `SchemaGuide` per loaded tokenizer compiles each request's schema into its own `LLMatcher`;
every decode step the engine asks it to mask the constrained rows' logits (tokens the schema
forbids get -inf) and then feeds each row's chosen token back to its matcher.

The bitmask is filled with llguidance's torch helpers, but applied here with a plain bit unpack:
`llguidance.torch.apply_token_bitmask_inplace` is a `torch.compile` kernel, and on a CPU its first
call compiles for 4-26 s (measured on this 2-core machine) inside the decode loop, stalling every row.
"""

from __future__ import annotations

import threading

import torch
from llguidance import LLMatcher
from llguidance.hf import from_tokenizer
from llguidance.torch import allocate_token_bitmask, fill_next_token_bitmask

_BIT_SHIFTS = torch.arange(32, dtype=torch.int32)


class SchemaGuide:
    """Compiles JSON schemas to per-request matchers and masks logits with them.

    The llguidance tokenizer (about 1 s to build for a 49k vocabulary) is built on first use, so a
    backend that never sees a schema never pays for it.
    """

    def __init__(self, tokenizer, vocab_size: int, eos_ids: set[int]) -> None:
        self._tokenizer = tokenizer
        self.vocab_size = vocab_size
        self._eos_ids = sorted(eos_ids)
        self._ll_tokenizer = None
        self._lock = threading.Lock()

    def matcher(self, schema: dict) -> LLMatcher:
        """A fresh matcher for `schema`; a schema llguidance cannot compile is a ValueError naming json_schema."""
        if not isinstance(schema, dict):
            raise ValueError(f"json_schema must be a JSON object (a dict), got {type(schema).__name__}")
        try:
            grammar = LLMatcher.grammar_from_json_schema(schema)
        except ValueError as error:
            raise ValueError(f"json_schema is not usable: {error}") from None
        matcher = LLMatcher(self._llguidance_tokenizer(), grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(f"json_schema is not usable: {matcher.get_error()}")
        return matcher

    def mask(self, scores: torch.Tensor, rows: list[int], matchers: list[LLMatcher]) -> None:
        """Set to -inf, in place, every token that `matchers[i]` forbids in row `rows[i]` of `scores`."""
        bitmask = allocate_token_bitmask(len(rows), self.vocab_size)
        for position, matcher in enumerate(matchers):
            fill_next_token_bitmask(matcher, bitmask, position)
        forbidden = ~((bitmask.unsqueeze(-1) >> _BIT_SHIFTS) & 1).flatten(1)[:, : scores.size(-1)].bool()
        forbidden = forbidden.to(scores.device)
        if len(rows) == scores.size(0):  # every row constrained: no gather and scatter
            scores.masked_fill_(forbidden, -float("inf"))
            return
        index = torch.tensor(rows, device=scores.device)
        scores[index] = scores[index].masked_fill(forbidden, -float("inf"))

    @staticmethod
    def advance(matcher: LLMatcher, token: int) -> bool:
        """Feed the row's chosen token to its matcher; True once the schema is complete and nothing may follow."""
        if not matcher.consume_token(token):
            raise RuntimeError(f"json_schema matcher refused token {token}: {matcher.get_error()}")
        return matcher.is_stopped()

    def _llguidance_tokenizer(self):
        with self._lock:
            if self._ll_tokenizer is None:
                self._ll_tokenizer = from_tokenizer(self._tokenizer, n_vocab=self.vocab_size, eos_token=self._eos_ids)
            return self._ll_tokenizer
