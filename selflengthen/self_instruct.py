"""Self-instruct: the model writes new long-writing instructions from two of the pool's.

Two random instructions of the pool go into a raw-completion prompt that lists them and leaves
the third open; the model's third is kept only if it has a sensible length, is new, and the model
itself answers yes when asked whether it can guide an article of more than 2000 words. With
`constrained_judge` that answer is held to a yes or a no by a JSON schema, so a small model's reply in
prose ("Yes, this instruction ...") is not counted as no.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from selflengthen.config import SelfInstructConfig, SelfLengthenConfig
from selflengthen.prompts import render_prompt
from infra.journal import iter_jsonl
from infra.recorded_model import RecordedModel
from infra.sampling import SamplingConfig
from infra.rng import item_rng
from selflengthen.text import count_words, normal_reply


class InstructionPool:
    """The instructions self-instruct draws its examples from, and the candidates being judged right now.

    Slots run concurrently: a candidate is reserved while its suitability question is in flight, so
    two slots that write the same text at once cannot both keep it. An accepted one joins the pool.
    """

    def __init__(self, instructions: list[str]) -> None:
        self.instructions = list(instructions)
        self.judging: set[str] = set()

    def __contains__(self, text: str) -> bool:
        return text in self.judging or text in self.instructions


async def self_instruct(
    model: RecordedModel, pool: InstructionPool, key: str, lang: str, config: SelfLengthenConfig, tally: Counter[str]
) -> str | None:
    """One new instruction for slot `key` (added to `pool`), or None once `max_attempts` candidates were rejected."""
    settings = config.self_instruct
    write = replace(config.sampling, stop=[*config.sampling.stop, *settings.stop_markers.get(lang, [])])
    judge = judge_sampling(config, lang)
    for attempt in range(settings.max_attempts):
        first, second = item_rng(config.seed, f"{key}/{attempt}").sample(pool.instructions, 2)
        prompt = render_prompt("self_instruct", lang, first=first, second=second)
        raw = await model.complete(f"{key}/{attempt}/write", prompt, write)
        if raw is None:  # the request failed: an outage, not a candidate of the wrong length
            tally["self_instruct.error"] += 1
            continue
        candidate = first_paragraph(raw)
        words = count_words(candidate)
        if not settings.min_words <= words <= settings.max_words:
            tally["self_instruct.length"] += 1
            continue
        if candidate in pool:
            tally["self_instruct.duplicate"] += 1
            continue
        question = render_prompt("judge_instruction", lang, instruction=candidate)
        pool.judging.add(candidate)
        try:
            reply = await model.chat(f"{key}/{attempt}/judge", [{"role": "user", "content": question}], judge)
        finally:
            pool.judging.discard(candidate)
        if reply is None:  # the question failed: no verdict of the model's on the candidate
            tally["self_instruct.judge.error"] += 1
            continue
        if not is_yes(reply, settings.yes_answers.get(lang, [])):
            tally["self_instruct.unsuitable"] += 1
            continue
        pool.instructions.append(candidate)
        return candidate
    return None


def judge_sampling(config: SelfLengthenConfig, lang: str) -> SamplingConfig:
    """How the suitability question is sampled: the method's sampling, a few tokens, and the schema when constrained."""
    settings = config.self_instruct
    return replace(config.sampling, max_tokens=settings.judge_max_tokens,
                   json_schema=suitability_schema(settings, lang))


def suitability_schema(settings: SelfInstructConfig, lang: str) -> dict | None:
    """The JSON schema a constrained suitability reply matches: one of `lang`'s yes or no answers, as a JSON
    string (its quotes are punctuation to `is_yes`); None when the judge is not constrained."""
    if not settings.constrained_judge:
        return None
    return {"type": "string", "enum": [*settings.yes_answers.get(lang, []), *settings.no_answers.get(lang, [])]}


def first_paragraph(text: str) -> str:
    """The completion up to its first blank line, trimmed: one instruction, not what follows it."""
    return text.strip().split("\n\n")[0].strip()


def is_yes(reply: str, yes_answers: list[str]) -> bool:
    """Whether `reply`, ignoring case, spaces and punctuation, is one of `yes_answers`."""
    return normal_reply(reply) in {normal_reply(answer) for answer in yes_answers}


def load_seed_instructions(path: Path) -> list[str]:
    """The `prompt` field of every line of a JSONL seed file; at least two are needed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"seed instruction file not found: {path}")
    prompts = []
    for number, record in iter_jsonl(path):
        prompt = record.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{path} line {number}: expected a non-empty string field 'prompt'")
        prompts.append(prompt.strip())
    if len(prompts) < 2:
        raise ValueError(f"{path} holds {len(prompts)} seed instruction(s); self-instruct needs at least 2")
    return prompts
