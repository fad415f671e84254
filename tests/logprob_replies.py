"""Token log-probability replies for judge tests: the `logprobs` a backend returns with top alternatives."""

from __future__ import annotations

import json
import math

from infra.backend import TokenLogprob


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
