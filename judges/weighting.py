"""Probability-weighted scores from the judge's token log-probabilities (G-Eval, Liu et al. 2023).

A judge that writes `"Clarity": 4` may have put 40% on 3: G-Eval scores Σ p(s)·s over the scale
values s at the position where the score was generated, which breaks ties and smooths a greedy
judge's coarse integers. How the position and the values are found:

1. The generated tokens are joined back into the reply text; the value is located after its
   dimension's key (the last `"Dimension": N` whose N is the parsed, argmax score).
2. The value must lie inside one token (e.g. ` 4` or `10`). A value spread over several tokens
   (a tokenizer that writes 10 as `1`,`0`) is not weighted: the first token's probabilities mix
   values, so the argmax is kept for that dimension.
3. At that token, an alternative counts for scale value s when, with the same text before and after
   the value inside the token, it spells s (surrounding whitespace ignored); `" 4"` and `"4"` both count for 4.
4. "1" vs "10": when a value's text is a prefix of another value's text (1 of 10 on a 1–10 scale)
   and the token ends where the value ends, the alternative "1" might be the start of "10". It is
   read as 1 only if "10" is itself a token at that position (generated or among the alternatives),
   i.e. the tokenizer spells 10 in one token. Otherwise, when "1" was not the generated token and
   its probability is at most AMBIGUOUS_MASS_LIMIT, it is left out (reading it as 1 or as 10 would
   move the score by at most that mass times the scale's span); else the argmax is kept.
5. p is renormalised over the counted values; the generated token is always among them.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Hashable, Mapping

from judges.parser import dimension_pattern
from judges.rubric import Rubric
from infra.backend import TokenLogprob

AMBIGUOUS_MASS_LIMIT = 0.05
"""Most probability an ambiguous alternative ("1" that may begin "10") may hold and still be left out."""


def weighted_scores(
    tokens: list[TokenLogprob] | None, rubric: Rubric, argmax: Mapping[str, float], missing: tuple[str, ...] = ()
) -> dict[str, float]:
    """Σ p(s)·s for each dimension whose score position and alternatives are found; gaps are never weighted."""
    if not tokens:
        return {}
    text = "".join(t.token for t in tokens)
    values = {str(v): v for v in rubric.scale_values()}
    weighted = {}
    for dim in rubric.dimensions:
        if dim in missing or dim not in argmax:
            continue
        target = argmax[dim]
        span = last_value_span(text, dimension_pattern(dim), r"\d+", lambda found, target=target: float(found) == target)
        distribution = None if span is None else value_distribution(tokens, *span, values)
        if distribution is not None:
            weighted[dim] = sum(p * s for s, p in distribution.items())
    return weighted


def last_value_span(text: str, key_pattern: str, value_pattern: str, accept) -> tuple[int, int] | None:
    """Start and end in `text` of the last value after `key_pattern` that `accept`s, or None."""
    span = None
    for match in re.finditer(f"{key_pattern}({value_pattern})", text, re.IGNORECASE):
        if accept(match.group(1)):
            span = match.span(1)
    return span


def value_distribution(
    tokens: list[TokenLogprob], start: int, end: int, candidates: Mapping[str, Hashable]
) -> dict[Hashable, float] | None:
    """Renormalised probabilities of the candidate values (text → label) at the token that wrote text[start:end].

    None when the value is not inside one token or an alternative is ambiguous (module docstring).
    """
    starts = list(_token_starts(tokens))
    index = bisect.bisect_right(starts, start) - 1
    if index < 0:
        return None
    token = tokens[index]
    offset = starts[index]
    if end > offset + len(token.token):
        return None
    prefix, suffix = token.token[: start - offset], token.token[end - offset :]
    alternatives = {**token.top, token.token: token.logprob}
    seen = {alt.strip() for alt in alternatives}
    spelled = {(prefix + text + suffix).strip(): label for text, label in candidates.items()}
    if not suffix.strip():
        unclear = _ambiguous(prefix, candidates, seen)
        if unclear:
            unclear_alternatives = [alt for alt in alternatives if alt.strip() in unclear]
            unclear_mass = sum(math.exp(alternatives[alt]) for alt in unclear_alternatives)
            if token.token in unclear_alternatives or unclear_mass > AMBIGUOUS_MASS_LIMIT:
                return None
            alternatives = {alt: lp for alt, lp in alternatives.items() if alt not in unclear_alternatives}
    mass: dict[Hashable, float] = {}
    for alt, logprob in alternatives.items():
        label = spelled.get(alt.strip())
        if label is not None:
            mass[label] = mass.get(label, 0.0) + math.exp(logprob)
    total = sum(mass.values())
    return {label: m / total for label, m in mass.items()} if total > 0 else None


def _ambiguous(prefix: str, candidates: Mapping[str, Hashable], seen: set[str]) -> set[str]:
    """The seen alternatives that spell a value which may be the first token of a longer value."""
    unclear = set()
    for short in candidates:
        longer = [c for c in candidates if c != short and c.startswith(short)]
        if (prefix + short).strip() in seen and any((prefix + c).strip() not in seen for c in longer):
            unclear.add((prefix + short).strip())
    return unclear


def _token_starts(tokens: list[TokenLogprob]):
    position = 0
    for token in tokens:
        yield position
        position += len(token.token)
