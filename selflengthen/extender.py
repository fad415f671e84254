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
from selflengthen.filters import passes_filters, trim_unfinished
from selflengthen.prompts import render_prompt
from infra.recorded_model import RecordedModel
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
    settings = config.extender
    for attempt in range(settings.max_attempts):
        best = answer
        for round_ in range(settings.rounds):
            candidate, outcome = await _extension_round(
                model, instruction, best, lang, f"{key}/{attempt}/{round_}", config, tally
            )
            if candidate is None:
                tally[f"extend.{outcome}"] += 1
            elif count_words(candidate) > count_words(best):
                best = candidate
        if count_words(best) > settings.min_growth * count_words(answer):
            return best
        tally["extend.too_little_growth"] += 1
    return None


async def _extension_round(
    model: RecordedModel,
    instruction: str,
    current: str,
    lang: str,
    key: str,
    config: SelfLengthenConfig,
    tally: Counter[str],
) -> tuple[str | None, str]:
    """One round's filtered candidate, or (None, why there is none).

    A one-paragraph rewrite has no leading part to keep; as in the reference the candidate is then
    the continuation alone, and `extend.enrichment_discarded` counts how often that happens.
    """
    half = join_paragraphs(first_half(split_paragraphs(current)))
    enriched = await model.chat(f"{key}/enrich", extend_request(instruction, half, lang), config.sampling)
    if enriched is None:  # the request failed: no enrichment of the model's to judge
        return None, "error"
    if not enriched.strip():
        return None, "no_enrichment"
    kept = leading_fraction(enriched, config.extender.keep_fraction)
    if not kept:
        tally["extend.enrichment_discarded"] += 1
    prompt = model.apply_chat_template(extend_request(instruction, current, lang)) + kept
    continuation = await model.complete(f"{key}/continue", prompt, config.sampling)
    if continuation is None:
        return None, "error"
    candidate = trim_unfinished(kept + continuation, config.filters)
    ok, reason = passes_filters(candidate, lang, config.filters)
    return (candidate, reason) if ok else (None, reason)
