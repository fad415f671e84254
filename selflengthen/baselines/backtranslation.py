"""Instruction backtranslation (Humpback, Li et al. 2023) for long outputs.

For each long human-written text the model reads its beginning and total length and writes the
instruction the text would answer (`backtranslate_instruction`); a length demand in the phrasing
of the final Self-Lengthen data ("about N words") is added; the model then rates how well the
text answers the instruction (`rate_pair`) and pairs below `min_rating` are dropped
(self-curation). The kept (instruction -> text) pairs are the Generator's training data.

Journaled in `work_dir`: `requests.jsonl` (every model reply), `pairs.jsonl` (one line per text:
{"key", "document", "lang", "words", "truncated", "instruction", "rating", "answer", "outcome"}),
then `data.jsonl` and `stats.json` (see `selflengthen.baselines.runner`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from infra.backend import TextBackend
from selflengthen.baselines.config import BacktranslationConfig
from selflengthen.baselines.corpus import TokenCounter, fit_to_length, load_corpus, token_counter
from selflengthen.baselines.excerpt import beginning
from selflengthen.baselines.constrained import constrained, rating_schema, read_rating
from selflengthen.baselines.parsing import parse_rating
from selflengthen.baselines.runner import KEPT, BaselineDataResult, BaselineRun
from selflengthen.journaled_run import OnItemDone
from selflengthen.config import FinalDataConfig
from selflengthen.length_demand import choose_length_demand, phrase_demand, with_length_demand
from selflengthen.prompts import render_prompt
from infra.recorded_model import RecordedModel
from infra.rng import item_rng
from selflengthen.self_instruct import first_paragraph
from selflengthen.text import count_words

ARM = "backtranslation"
STEP = "pairs"
_LABEL = re.compile(r"^(?:\*\*)?(?:request|instruction|task|请求|指令|任务)(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*", re.I)
_QUOTES = {'"': '"', "“": "”", "「": "」", "'": "'"}


async def build_backtranslation_data(
    model: TextBackend,
    config: BacktranslationConfig,
    work_dir: Path,
    on_item_done: OnItemDone | None = None,
    count_tokens: TokenCounter | None = None,
) -> BaselineDataResult:
    """Run (or resume) backtranslation over the corpus in `work_dir`; write `data.jsonl` and `stats.json`.

    `count_tokens` measures a text against `config.train.max_length`; by default the configured
    tokenizer's count, else the estimate from `tokens_per_word`.
    """
    texts = load_corpus(config)
    order = list(range(len(texts)))
    item_rng(config.seed, "documents").shuffle(order)
    chosen = order[: config.max_documents]
    count_tokens = count_tokens or token_counter(config)
    max_tokens = config.train.max_length - config.prompt_tokens_reserved
    run = BaselineRun(model, work_dir, config.max_in_flight, on_item_done, config.seed)
    try:
        items = [
            (
                f"doc/{index}",
                partial(backtranslate_text, run.model, texts[index], index, config, max_tokens, count_tokens, run.tally),
            )
            for index in chosen
        ]
        records = await run.run_items(STEP, items)
        return run.finish(ARM, records, config.max_samples)
    finally:
        run.close()


async def backtranslate_text(
    model: RecordedModel,
    text: str,
    index: int,
    config: BacktranslationConfig,
    max_tokens: int,
    count_tokens: TokenCounter,
    tally: Counter[str],
) -> dict[str, Any]:
    """One text's record: fitted to the trainer, given an instruction with a length demand, rated."""
    key, lang = f"doc/{index}", config.language
    record: dict[str, Any] = {"document": index, "lang": lang, "instruction": None, "rating": None, "answer": None}
    fitted = fit_to_length(text, max_tokens, count_tokens)
    record["truncated"] = fitted is not None and fitted != text
    if fitted is None or (record["truncated"] and config.long_texts == "skip"):
        return {**record, "words": count_words(text), "outcome": "too_long"}
    words = count_words(fitted)
    record.update(words=words, answer=fitted)
    shown = beginning(fitted, config.shown_words)
    instruction = await backtranslate_instruction(model, shown, words, key, config, tally)
    if instruction is None:
        return {**record, "outcome": "no_instruction"}
    rng = item_rng(config.seed, f"demand/{key}")
    demands = FinalDataConfig(type_weights=config.demand_weights)
    phrase = phrase_demand(choose_length_demand(words, rng, demands), lang, rng, demands)
    record["instruction"] = with_length_demand(instruction, phrase, lang, rng)
    if config.min_rating is None:
        return {**record, "outcome": KEPT}
    record["rating"] = await rate_pair(model, instruction, shown, words, key, config, tally)
    if record["rating"] is None:
        return {**record, "outcome": "unrated"}
    return {**record, "outcome": KEPT if record["rating"] >= config.min_rating else "low_rating"}


async def backtranslate_instruction(
    model: RecordedModel, shown: str, words: int, key: str, config: BacktranslationConfig, tally: Counter[str]
) -> str | None:
    """The instruction the model writes for a text it sees the beginning of, or None after bounded tries."""
    prompt = render_prompt("backtranslation_instruction", config.language, beginning=shown, words=str(words))
    sampling = replace(config.sampling, max_tokens=config.instruction_max_tokens)
    for attempt in range(config.instruction_attempts):
        reply = await model.chat(f"{key}/instruction/{attempt}", [{"role": "user", "content": prompt}], sampling)
        if reply is None:
            tally["instruction.error"] += 1
            continue
        instruction = clean_instruction(reply)
        if not config.instruction_min_words <= count_words(instruction) <= config.instruction_max_words:
            tally["instruction.length"] += 1
            continue
        return instruction
    return None


def clean_instruction(reply: str) -> str:
    """The reply's first paragraph without a leading "Request:" label or the quotes around it."""
    text = _LABEL.sub("", first_paragraph(reply), count=1).strip()
    if len(text) > 1 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


async def rate_pair(
    model: RecordedModel,
    instruction: str,
    shown: str,
    words: int,
    key: str,
    config: BacktranslationConfig,
    tally: Counter[str],
) -> int | None:
    """The model's 1..rating_scale rating of how well the text answers the instruction; None if never readable.
    With `constrained_rating` the reply is held to JSON where the backend takes a schema."""
    prompt = render_prompt(
        "backtranslation_rating",
        config.language,
        instruction=instruction,
        beginning=shown,
        words=str(words),
        scale=str(config.rating_scale),
    )
    schema = rating_schema(config.rating_scale) if config.constrained_rating else None
    sampling = constrained(model, replace(config.sampling, max_tokens=config.rating_max_tokens), schema)
    read = read_rating if sampling.json_schema is not None else parse_rating
    for attempt in range(config.rating_attempts):
        reply = await model.chat(f"{key}/rating/{attempt}", [{"role": "user", "content": prompt}], sampling)
        rating = read(reply, config.rating_scale) if reply is not None else None
        if rating is not None:
            return rating
        tally["rating.error" if reply is None else "rating.unparsed"] += 1
    return None
