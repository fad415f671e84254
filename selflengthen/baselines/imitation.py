"""Behaviour imitation (AgentWrite, LongWriter: Bai et al. 2024): a teacher writes long answers in planned sections.

For each long-writing instruction the teacher first writes a plan of numbered sections with a
word budget each (`write_plan`), then writes the sections one at a time with the plan and the
text so far in its context (`write_sections`); the sections joined (`join_sections`) are the
answer the student is fine-tuned on. The instructions are a Self-Lengthen iteration's
`instructions.jsonl`, or new ones written by the Self-Lengthen `self_instruct` step.

Journaled in `work_dir`: `requests.jsonl` (every teacher reply), `instructions.jsonl` (when
self-instructing; the Self-Lengthen format), `answers.jsonl` (one line per instruction:
{"key", "instruction_key", "lang", "instruction", "plan" | null, "section_words", "answer" | null,
"outcome"}), then `data.jsonl` and `stats.json` (see `selflengthen.baselines.runner`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

from infra.backend import TextBackend
from selflengthen.baselines.config import ImitationConfig
from selflengthen.baselines.constrained import constrained, plan_schema, read_plan
from selflengthen.baselines.excerpt import ending
from selflengthen.baselines.parsing import PlanSection, parse_plan
from selflengthen.baselines.runner import KEPT, BaselineDataResult, BaselineRun
from selflengthen.journaled_run import OnItemDone
from selflengthen.config import SelfLengthenConfig
from infra.journal import iter_jsonl
from selflengthen.prompts import render_prompt
from infra.recorded_model import RecordedModel
from infra.rng import item_rng
from selflengthen.self_instruct import InstructionPool, load_seed_instructions, self_instruct
from selflengthen.text import count_words, join_paragraphs

ARM = "imitation"
INSTRUCTIONS = "instructions"
ANSWERS = "answers"

PLAN_LINE = {"en": "Section {number} - {point} - {words} words", "zh": "第{number}部分 - {point} - {words}字"}
NOTHING_WRITTEN = {"en": "(nothing yet: this is the first section)", "zh": "（尚无，这是第一部分）"}
_SECTION_LABEL = re.compile(
    r"^\s*(?:\*\*|#+\s*)?(?:(?:section|paragraph|part)\s*\d+|第\s*[\d一二三四五六七八九十]+\s*(?:部分|段))"
    r"(?:\*\*)?[ \t]*(?:[:：.\-–—]|\n)\s*(?:\*\*)?\s*",
    re.I,
)


async def build_imitation_data(
    teacher: TextBackend, config: ImitationConfig, work_dir: Path, on_item_done: OnItemDone | None = None
) -> BaselineDataResult:
    """Run (or resume) AgentWrite-style answering in `work_dir`; write `data.jsonl` and `stats.json`.

    `on_item_done` is called with "instructions" (self-instruct only) and "answers" as items finish.
    """
    run = BaselineRun(teacher, work_dir, config.max_in_flight, on_item_done, config.seed)
    try:
        if config.instructions_file is not None:
            instructions = load_instructions(Path(config.instructions_file), config.languages)
        else:
            instructions = await _self_instructed(run, config)
        items = []
        for lang in config.languages:
            chosen = [item for item in instructions if item[1] == lang]
            item_rng(config.seed, f"instructions/{lang}").shuffle(chosen)
            for instruction_key, _, instruction in chosen[: config.max_instructions]:
                key = f"answer/{instruction_key}"
                produce = partial(imitate_answer, run.model, instruction, lang, key, config, run.tally)
                items.append((key, partial(_with_fields, produce, instruction_key=instruction_key)))
        records = await run.run_items(ANSWERS, items)
        return run.finish(ARM, records, config.max_samples)
    finally:
        run.close()


async def _with_fields(produce, **fields: Any) -> dict[str, Any]:
    return {**fields, **await produce()}


def load_instructions(path: Path, languages: list[str]) -> list[tuple[str, str, str]]:
    """(key, lang, instruction) of every accepted instruction in a Self-Lengthen `instructions.jsonl` (or of
    every instruction answered in its `initial_answers.jsonl`), each instruction once."""
    path = path / f"{INSTRUCTIONS}.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise ValueError(f"instructions file not found: {path}")
    found, seen = [], set()
    for number, record in iter_jsonl(path):  # the file's own line numbers, blank lines counted
        if not {"key", "lang", "instruction"} <= record.keys():
            raise ValueError(f"{path} line {number}: expected a Self-Lengthen instruction record (key, lang, "
                             f"instruction)")
        if record["instruction"] and record["lang"] in languages and (record["lang"], record["instruction"]) not in seen:
            seen.add((record["lang"], record["instruction"]))
            found.append((record.get("instruction_key", record["key"]), record["lang"], record["instruction"]))
    if not found:
        raise ValueError(f"{path} holds no accepted instructions in {', '.join(languages)}")
    return found


async def _self_instructed(run: BaselineRun, config: ImitationConfig) -> list[tuple[str, str, str]]:
    """New instructions from the Self-Lengthen self-instruct step (plus the seeds if `include_seeds`)."""
    settings = SelfLengthenConfig(
        languages=config.languages,
        seed_files=config.seed_files,
        seed=config.seed,
        sampling=config.sampling,
        self_instruct=config.self_instruct,
    )
    journal = run.journal(INSTRUCTIONS)
    found, items = [], []
    for lang in config.languages:
        seeds = load_seed_instructions(settings.seed_file(lang))
        if config.self_instruct.include_seeds:
            found += [(f"seed/{lang}/{index}", lang, seed) for index, seed in enumerate(seeds)]
        finished = sorted(
            (r for r in journal.records.values() if r["lang"] == lang and r["instruction"]),
            key=lambda r: int(r["key"].rsplit("/", 1)[1]),
        )
        pool = InstructionPool(seeds + [r["instruction"] for r in finished])
        wanted = config.self_instruct.instructions_per_language
        if config.max_instructions is not None:  # writing more than will be answered is wasted work
            wanted = min(wanted, config.max_instructions)
        for index in range(wanted):
            key = f"si/{lang}/{index}"
            items.append((key, partial(_new_instruction, run, pool, key, lang, settings)))
    records = await run.run_items(INSTRUCTIONS, items)
    return found + [(r["key"], r["lang"], r["instruction"]) for r in records if r["instruction"]]


async def _new_instruction(
    run: BaselineRun, pool: InstructionPool, key: str, lang: str, settings: SelfLengthenConfig
) -> dict[str, Any]:
    return {"lang": lang, "instruction": await self_instruct(run.model, pool, key, lang, settings, run.tally)}


async def imitate_answer(
    model: RecordedModel, instruction: str, lang: str, key: str, config: ImitationConfig, tally: Counter[str]
) -> dict[str, Any]:
    """One instruction's record: the teacher's plan and its sections joined into one answer, or why not."""
    record: dict[str, Any] = {"lang": lang, "instruction": instruction, "plan": None, "section_words": None, "answer": None}
    plan = await write_plan(model, instruction, lang, key, config, tally)
    if plan is None:
        return {**record, "outcome": "no_plan"}
    record["plan"] = [asdict(section) for section in plan]
    sections = await write_sections(model, instruction, plan, lang, key, config, tally)
    if sections is None:
        return {**record, "outcome": "section_failed"}
    record["section_words"] = [count_words(section) for section in sections]
    return {**record, "answer": join_sections(sections), "outcome": KEPT}


async def write_plan(
    model: RecordedModel, instruction: str, lang: str, key: str, config: ImitationConfig, tally: Counter[str]
) -> list[PlanSection] | None:
    """A plan of `min_sections`..`max_sections` sections with word budgets, or None after `plan_attempts`.
    With `constrained_plan` the reply is held to JSON where the backend takes a schema."""
    prompt = render_prompt("imitation_plan", lang, instruction=instruction)
    schema = plan_schema(config.min_sections, config.max_sections) if config.constrained_plan else None
    sampling = constrained(model, replace(config.sampling, max_tokens=config.plan_max_tokens), schema)
    read = read_plan if sampling.json_schema is not None else parse_plan
    for attempt in range(config.plan_attempts):
        reply = await model.chat(f"{key}/plan/{attempt}", [{"role": "user", "content": prompt}], sampling)
        plan = read(reply, config.default_section_words) if reply is not None else None
        if reply is None:
            tally["plan.error"] += 1
        elif plan is None:
            tally["plan.unparsed"] += 1
        elif len(plan) < config.min_sections:
            tally["plan.too_few_sections"] += 1
        elif len(plan) > config.max_sections:
            tally["plan.too_many_sections"] += 1
        else:
            return plan
    return None


async def write_sections(
    model: RecordedModel,
    instruction: str,
    plan: list[PlanSection],
    lang: str,
    key: str,
    config: ImitationConfig,
    tally: Counter[str],
) -> list[str] | None:
    """Each planned section in turn, written with the plan and the text so far; None if one stays empty."""
    plan_text = "\n".join(PLAN_LINE[lang].format(**asdict(section)) for section in plan)
    sections: list[str] = []
    for section in plan:
        written = join_sections(sections)
        if config.written_context_words is not None:
            written = ending(written, config.written_context_words)
        prompt = render_prompt(
            "imitation_section",
            lang,
            instruction=instruction,
            plan=plan_text,
            written=written or NOTHING_WRITTEN[lang],
            number=str(section.number),
            section=section.point,
            words=str(section.words),
        )
        budget = min(config.sampling.max_tokens, math.ceil(section.words * config.tokens_per_word))
        sampling = replace(config.sampling, max_tokens=budget)
        text = ""
        for attempt in range(config.section_attempts):
            request = f"{key}/section/{section.number}/{attempt}"
            reply = await model.chat(request, [{"role": "user", "content": prompt}], sampling)
            text = clean_section(reply or "")
            if text:
                break
            tally["section.error" if reply is None else "section.empty"] += 1
        if not text:
            return None
        sections.append(text)
    return sections


def clean_section(reply: str) -> str:
    """A section's text without surrounding blank space and without a leading "Section 2:" label."""
    return _SECTION_LABEL.sub("", reply.strip(), count=1).strip()


def join_sections(sections: list[str]) -> str:
    """The answer: the sections in order, a blank line between two."""
    return join_paragraphs([section.strip() for section in sections])
