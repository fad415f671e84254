"""Turn a judge's free-form reply into per-dimension scores, or a one-line reason why not.

Policy (the same for every rubric, with the gap rule taken from the rubric file):
- The scores are read from the JSON object in the reply that names the most rubric dimensions, the
  last of them on a tie; an echo of the prompt's own example object is skipped when the reply has
  another (a judge that first repeats the format, then answers, is scored on its answer). Code fences, prose around it, single quotes, trailing commas and nesting
  (`{"scores": {...}}`, `{"Relevance": {"score": 4}}`, `[{"dimension": ..., "score": ...}]`) are accepted.
- Dimension names match regardless of case, spacing, `_`/`-`, camelCase and `&` for "and".
- A value may be a number or a string: "4", "4.0", "4/5" or "4 out of 5" (a fraction must be over
  the rubric's maximum). Anything else (booleans, words, "8/10" on a 1–5 scale) rejects the reply.
- Without any usable JSON (prose, truncated JSON) the `Dimension: value` (or `=`, `-`, `–`) pairs are
  salvaged from the text.
- Any length and nesting is handled in linear time and fails with JudgeReplyError, never a crash
  (json_spans.py).
- A value outside the scale rejects the reply: it is never clamped.
- A missing dimension (or a null value) gets the rubric's `missing_dimension_score` and is recorded;
  more than `max_missing_dimensions` gaps (or any gap when the rubric has no gap score) rejects the reply.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from judges.errors import JudgeReplyError
from judges.json_spans import json_objects
from judges.rubric import Rubric

_SCORE_KEYS = ("score", "rating", "value", "points", "grade")
_NAME_KEYS = ("dimension", "name", "aspect", "criterion", "criteria", "category")
_NUMBER = r"-?\d+(?:\.\d+)?"
_SCORE_TEXT = re.compile(rf"^\s*({_NUMBER})\s*(?:(?:/|out\s+of)\s*({_NUMBER}))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedReply:
    """Scores for every rubric dimension (gaps filled per policy) and the dimensions that were gaps."""

    scores: dict[str, float]
    missing: tuple[str, ...]


def parse_reply(text: str, rubric: Rubric) -> ParsedReply:
    """Parse a judge reply under `rubric`'s policy; raise JudgeReplyError with a one-line reason."""
    if not text or not text.strip():
        raise JudgeReplyError("empty reply")
    scan = json_objects(text)
    found = _pick_scores([_find_scores(obj, rubric) for obj in scan.objects], rubric)
    if not found:
        found = _salvage_pairs(text, rubric)
    if not found:
        if scan.objects:
            reason = "the JSON in the reply names none of the rubric's dimensions"
        elif scan.truncated:
            reason = "truncated JSON with no complete score"
        else:
            reason = "no JSON object or 'Dimension: score' pair in the reply"
        raise JudgeReplyError(f"{reason}: {_shorten(text)!r}")
    scores = {dim: _to_score(dim, value, rubric) for dim, value in found.items() if value is not None}
    return _apply_gap_policy(scores, rubric)


def normalize_key(name: str) -> str:
    """Canonical form of a dimension name: 'Breadth & Depth', 'breadth_and_depth', 'BreadthAndDepth' agree."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower().replace("&", " ")
    return "".join(t for t in re.split(r"[\W_]+", spaced) if t and t != "and")


def _pick_scores(candidates: list[dict[str, Any]], rubric: Rubric) -> dict[str, Any]:
    """The last of the most complete score objects, skipping echoes of the prompt's example when others exist."""
    examples = _example_scores(rubric)
    named = [c for c in candidates if c]
    own = [c for c in named if c not in examples] or named
    best: dict[str, Any] = {}
    for candidate in own:
        if len(candidate) >= len(best):
            best = candidate
    return best


@lru_cache(maxsize=32)
def _example_scores(rubric: Rubric) -> tuple[dict[str, Any], ...]:
    """The score objects the rubric's own prompt shows as an example of the reply format."""
    return tuple(s for s in (_find_scores(obj, rubric) for obj in json_objects(rubric.template).objects) if s)


def _find_scores(obj: Any, rubric: Rubric) -> dict[str, Any]:
    """The rubric-dimension values in `obj` or its most complete nested part."""
    by_key = {normalize_key(d): d for d in rubric.dimensions}
    best: dict[str, Any] = {}
    if isinstance(obj, dict):
        best = {by_key[normalize_key(k)]: _unwrap(v) for k, v in obj.items() if isinstance(k, str) and normalize_key(k) in by_key}
        children = obj.values()
    elif isinstance(obj, list):
        best = _from_named_items(obj, by_key)
        children = obj
    else:
        return {}
    for child in children:
        nested = _find_scores(child, rubric)
        if len(nested) > len(best):
            best = nested
    return best


def _from_named_items(items: list[Any], by_key: dict[str, str]) -> dict[str, Any]:
    """[{"dimension": "Relevance", "score": 4}, ...] → {"Relevance": 4, ...}."""
    found = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        name = next((item[k] for k in _NAME_KEYS if isinstance(item.get(k), str)), None)
        if name is not None and normalize_key(name) in by_key:
            found[by_key[normalize_key(name)]] = _unwrap(item)
    return found


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        return next((lowered[k] for k in _SCORE_KEYS if k in lowered), value)
    return value


def _salvage_pairs(text: str, rubric: Rubric) -> dict[str, str]:
    """`Dimension: 4`, `Dimension - 4`, `"Dimension": "4/5"` pairs from prose or truncated JSON, first mention wins."""
    found = {}
    for dim in rubric.dimensions:
        value = rf"({_NUMBER}(?:\s*(?:/|out\s+of)\s*{_NUMBER})?)"
        match = re.search(dimension_pattern(dim) + value, text, re.IGNORECASE)
        if match:
            found[dim] = match.group(1)
    return found


def dimension_pattern(dim: str) -> str:
    """A regex for a dimension's name (any key variant) and the separator before its value."""
    words = [w for w in re.split(r"[\W_]+", dim) if w and w.lower() != "and"]
    name = r"[\W_]*(?:and[\W_]*)?".join(re.escape(w) for w in words)
    return rf"\b{name}\b[\"'*\s]*[:=\-–—]\s*[\"']?\s*"


def _to_score(dim: str, value: Any, rubric: Rubric) -> float:
    score = _as_number(dim, value, rubric)
    if not rubric.scale_min <= score <= rubric.scale_max:
        raise JudgeReplyError(
            f"{dim}={_fmt(score)} is outside the scale {_fmt(rubric.scale_min)}–{_fmt(rubric.scale_max)}"
        )
    return score


def _as_number(dim: str, value: Any, rubric: Rubric) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, str) and (match := _SCORE_TEXT.match(value)):
        numerator, denominator = match.groups()
        if denominator is None:
            return float(numerator)
        if float(denominator) == rubric.scale_max:
            return float(numerator)
        raise JudgeReplyError(f"{dim}={value!r} is a fraction of {denominator}, not of the scale maximum {_fmt(rubric.scale_max)}")
    raise JudgeReplyError(f"{dim}={_shorten(repr(value))} is not a score")


def _apply_gap_policy(scores: dict[str, float], rubric: Rubric) -> ParsedReply:
    missing = tuple(d for d in rubric.dimensions if d not in scores)
    if len(missing) > rubric.max_missing_dimensions or (missing and rubric.missing_dimension_score is None):
        raise JudgeReplyError(
            f"missing {len(missing)} of {len(rubric.dimensions)} dimensions ({', '.join(missing)}); "
            f"rubric {rubric.name} allows {rubric.max_missing_dimensions}"
        )
    filled = {d: scores.get(d, rubric.missing_dimension_score) for d in rubric.dimensions}
    return ParsedReply(scores={d: float(v) for d, v in filled.items()}, missing=missing)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _shorten(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
