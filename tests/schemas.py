"""A judge-like JSON schema and a hand check of replies against it (no jsonschema dependency)."""

from __future__ import annotations

import json

SCORES = ("relevance", "accuracy", "style")

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "relevance": {"type": "integer", "minimum": 1, "maximum": 10},
        "accuracy": {"type": "integer", "minimum": 1, "maximum": 10},
        "style": {"type": "integer", "enum": list(range(1, 11))},
    },
    "required": list(SCORES),
    "additionalProperties": False,
}


def follows_judge_schema(text: str) -> bool:
    """True when `text` is one JSON object with exactly the three scores, each an integer in 1..10."""
    try:
        reply = json.loads(text)
    except json.JSONDecodeError:
        return False
    return (
        isinstance(reply, dict)
        and set(reply) == set(SCORES)
        and all(type(reply[k]) is int and 1 <= reply[k] <= 10 for k in SCORES)
    )
