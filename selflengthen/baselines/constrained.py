"""Schema-constrained replies of the baselines (a deviation, off by default): the JSON schemas, and reading them.

A small model asked for "Score: N" or a plan "one section per line" often answers in prose, which the
free-text parsers (`selflengthen.baselines.parsing`) cannot read, and the item is lost. With
`backtranslation.constrained_rating` or `imitation.constrained_plan` the reply is held by a JSON schema
to the form asked for, as `self_instruct.constrained_judge` holds the suitability answer. A backend that
takes no schema (`features` without "json_schema") gets the free-text request instead, read as without
the flag; a constrained reply that still does not read as JSON (cut off by max_tokens) goes to the free
parser too, and what neither reads is counted as unparsed, as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from infra.recorded_model import RecordedModel
from infra.sampling import SamplingConfig
from selflengthen.baselines.parsing import PlanSection, parse_plan, parse_rating

PLAN_POINT_MAX_CHARS = 200
"""A section's main point is a line, not the section: a cap keeps a rambling point from using up the plan's tokens."""

COMPACT = {"x-guidance": {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}}
"""One space after a comma or colon, nothing else between JSON tokens: with the schema's free whitespace a small model
can spend all of a rating's 32 tokens on newlines after its "{" (measured on the small run's candidates). llguidance
(the in-process engine, vLLM's guidance backend) reads this; other validators skip an unknown `x-` keyword."""

_SECTION = re.compile(r'\{\s*"text"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"words"\s*:\s*(\d+)\s*\}')


def rating_schema(scale: int) -> dict:
    """A rating from 1 to `scale`, then its reason: the number first, so a reply cut short still holds it."""
    return {"type": "object", "additionalProperties": False, "required": ["rating", "reason"],
            "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": scale},
                           "reason": {"type": "string"}}, **COMPACT}


def plan_schema(min_sections: int, max_sections: int) -> dict:
    """A list of `min_sections`..`max_sections` sections, each its main point and its word count."""
    section = {"type": "object", "additionalProperties": False, "required": ["text", "words"],
               "properties": {"text": {"type": "string", "maxLength": PLAN_POINT_MAX_CHARS},
                              "words": {"type": "integer", "minimum": 1}}}
    return {"type": "object", "additionalProperties": False, "required": ["sections"],
            "properties": {"sections": {"type": "array", "items": section,
                                        "minItems": min_sections, "maxItems": max_sections}}, **COMPACT}


def constrained(model: RecordedModel, sampling: SamplingConfig, schema: dict | None) -> SamplingConfig:
    """`sampling` with `schema` where there is one and the model's backend takes schemas; else unchanged."""
    if schema is None or "json_schema" not in getattr(model.backend, "features", frozenset()):
        return sampling
    return replace(sampling, json_schema=schema)


def read_rating(reply: str, scale: int) -> int | None:
    """The rating of a constrained reply ({"rating": N, "reason": ...}), else what the free parser reads."""
    try:
        value = json.loads(reply).get("rating")
    except (ValueError, AttributeError):
        return parse_rating(reply, scale)
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= scale else None


def read_plan(reply: str, default_words: int | None) -> list[PlanSection] | None:
    """The sections of a constrained plan, numbered in order (a plan cut short keeps its complete sections);
    a reply holding none is read by the free parser."""
    found = _SECTION.findall(reply)
    if not found:
        return parse_plan(reply, default_words)
    plan = [PlanSection(number, " ".join(json.loads(text).split()), int(words))
            for number, (text, words) in enumerate(found, start=1)]
    return plan if all(section.point and section.words > 0 for section in plan) else None
