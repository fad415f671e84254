"""The Extender's step: lengthen an answer by enriching its first half, then continuing.

One round: split the answer into paragraphs; ask (chat) for an enriched rewrite of the first
half; keep the leading two thirds of that rewrite, which stay faithful to the half; put them after
the chat prompt that asks to extend the WHOLE answer and let the model continue them by raw
completion. The candidate is the kept part plus the continuation. Each round starts from the best
answer so far; the longest that passes the filters wins if it grew enough.
"""

from __future__ import annotations

from collections import Counter

from selflengthen.config import SelfLengthenConfig
from selflengthen.filters import passes_filters
from selflengthen.prompts import render_prompt
from selflengthen.recorded_model import RecordedModel
from selflengthen.text import count_words, first_half, join_paragraphs, leading_fraction, split_paragraphs


def extend_request(instruction: str, answer: str, lang: str) -> list[dict[str, str]]:
    """The chat messages that ask to expand `answer` to `instruction` (also the Extender's training prompt)."""
    return [{"role": "user", "content": render_prompt("extend", lang, instruction=instruction, answer=answer)}]


async def extend_response(
    model: RecordedModel,
    instruction: str,
    answer: str,
    lang: str,
    key: str,
    config: SelfLengthenConfig,
    tally: Counter[str],
) -> str | None:
    """A longer answer that passes the filters, or None after `extender.max_attempts` failed attempts."""
    for attempt in range(config.extender.max_attempts):
        extended = await _extend_attempt(model, instruction, answer, lang, f"{key}/{attempt}", config, tally)
        if extended is not None:
            return extended
    return None


async def _extend_attempt(
    model: RecordedModel,
    instruction: str,
    answer: str,
    lang: str,
    key: str,
    config: SelfLengthenConfig,
    tally: Counter[str],
) -> str | None:
    settings = config.extender
    best = answer
    for round_ in range(settings.rounds):
        half = join_paragraphs(first_half(split_paragraphs(best)))
        enriched = await model.chat(f"{key}/{round_}/enrich", extend_request(instruction, half, lang), config.sampling)
        if not enriched or not enriched.strip():
            tally["extend.no_enrichment"] += 1
            continue
        kept = leading_fraction(enriched, settings.keep_fraction)
        prompt = model.apply_chat_template(extend_request(instruction, best, lang)) + kept
        continuation = await model.complete(f"{key}/{round_}/continue", prompt, config.sampling)
        if continuation is None:
            tally["extend.error"] += 1
            continue
        candidate = (kept + continuation).strip()
        ok, reason = passes_filters(candidate, lang, config.filters)
        if not ok:
            tally[f"extend.{reason}"] += 1
        elif count_words(candidate) > count_words(best):
            best = candidate
    if count_words(best) > settings.min_growth * count_words(answer):
        return best
    tally["extend.too_little_growth"] += 1
    return None
