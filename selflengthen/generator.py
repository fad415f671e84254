"""The Generator's step: answer an instruction by chat, retrying while the filters reject."""

from __future__ import annotations

from collections import Counter

from selflengthen.config import SelfLengthenConfig
from selflengthen.filters import passes_filters, trim_unfinished
from infra.recorded_model import RecordedModel


async def generate_initial(
    model: RecordedModel, instruction: str, lang: str, key: str, config: SelfLengthenConfig, tally: Counter[str]
) -> str | None:
    """A filtered answer to `instruction`, or None after `generator.max_attempts` rejected tries."""
    for attempt in range(config.generator.max_attempts):
        reply = await model.chat(f"{key}/{attempt}", [{"role": "user", "content": instruction}], config.sampling)
        if reply is None:
            tally["generate.error"] += 1
            continue
        reply = trim_unfinished(reply, config.filters)
        ok, reason = passes_filters(reply, lang, config.filters)
        if ok:
            return reply
        tally[f"generate.{reason}"] += 1
    return None
