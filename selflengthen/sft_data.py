"""Turn one iteration's extended answers into the two roles' fine-tuning sets (chat messages).

Generator: instruction -> extended answer. Extender: a request to expand the initial answer,
with each of its lines kept with probability 0.8 so the Extender learns to add, not only copy,
-> extended answer. Records are `{"key", "lang", "instruction", "initial", "extended"}`. With matched budgets
a trained arm's examples are a seeded `subsample` of them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from selflengthen.extender import extend_request

LINE_KEEP_PROBABILITY = 0.8


def chat_example(messages: list[dict[str, str]], answer: str) -> dict[str, Any]:
    return {"messages": [*messages, {"role": "assistant", "content": answer}]}


def build_generator_data(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One example per record: the instruction, answered by the extended answer."""
    return [chat_example([{"role": "user", "content": r["instruction"]}], r["extended"]) for r in records]


def build_extender_data(
    records: list[dict[str, Any]], rng_for: Callable[[str], random.Random], keep: float = LINE_KEEP_PROBABILITY
) -> list[dict[str, Any]]:
    """One example per record: expand the line-thinned initial answer into the extended one."""
    examples = []
    for record in records:
        thinned = drop_lines(record["initial"], rng_for(record["key"]), keep)
        request = extend_request(record["instruction"], thinned, record["lang"])
        examples.append(chat_example(request, record["extended"]))
    return examples


def subsample(examples: list[dict[str, Any]], size: int, rng: random.Random) -> list[dict[str, Any]]:
    """`size` of `examples` drawn by `rng`, in their order (all of them when there are no more): an arm's data cut to a
    budget matched to the other arms', so they differ in how their data was made, not in how much there is."""
    if len(examples) <= size:
        return list(examples)
    return [examples[i] for i in sorted(rng.sample(range(len(examples)), size))]


def drop_lines(text: str, rng: random.Random, keep: float = LINE_KEEP_PROBABILITY) -> str:
    """Keep each non-empty line of `text` with probability `keep`; kept lines are joined by blank lines."""
    lines = [line for line in text.split("\n") if line.strip()]
    return "\n\n".join(line for line in lines if rng.random() < keep)
