"""The scripted judge backend the judges tests share: it injects replies, faults and log-probabilities.

`script(messages, sampling, call_number)` returns the reply text, a ready `Completion` (to carry
logprobs), or raises; `features` says which optional request fields the fake claims to honour.
"""

from __future__ import annotations

import asyncio
import json
import math

from infra.backend import Completion, TokenLogprob
from infra.sampling import SamplingConfig


class ScriptedClient:
    """Fault-injection client that records every request's sampling and counts requests in flight."""

    def __init__(self, script, delay: float = 0.0, features: frozenset[str] = frozenset()):
        self.script = script
        self.delay = delay
        self.features = features
        self.calls: list[SamplingConfig] = []
        self.messages: list[list[dict[str, str]]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def chat(self, messages, sampling):
        self.calls.append(sampling)
        self.messages.append(messages)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            reply = self.script(messages, sampling, len(self.calls))
            return reply if isinstance(reply, Completion) else Completion(text=reply, finish_reason="stop")
        finally:
            self.in_flight -= 1

    async def complete(self, prompt, sampling):
        raise NotImplementedError("judges only chat")

    def apply_chat_template(self, messages):
        raise NotImplementedError("judges only chat")


def tokens(*pieces: str | tuple[str, dict[str, float]]) -> list[TokenLogprob]:
    """Tokens from text pieces; a (text, {alternative: p}) piece carries probabilities (the text's own among them)."""
    out = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(TokenLogprob(piece, 0.0, {piece: 0.0}))
        else:
            text, probs = piece
            top = {alt: math.log(p) for alt, p in probs.items()}
            out.append(TokenLogprob(text, top[text], top))
    return out


def json_tokens(scores: dict[str, int], alternatives: dict[str, dict[str, float]]) -> list[TokenLogprob]:
    """A `{"Dim": N, ...}` reply as tokens, each value ` N` one token with the given alternatives."""
    pieces: list = ["{"]
    for i, (dim, value) in enumerate(scores.items()):
        pieces.append(("" if i == 0 else ", ") + json.dumps(dim) + ":")
        token = f" {value}"
        pieces.append((token, alternatives[dim]) if dim in alternatives else token)
    pieces.append("}")
    return tokens(*pieces)
