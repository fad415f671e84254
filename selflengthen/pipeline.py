"""One Self-Lengthen synthesis iteration, streamed: self-instruct -> generate -> filter -> extend -> filter.

No step waits for the stragglers of the one before: an instruction is answered as soon as it is
accepted, an answer is extended as soon as it passes the filters. One limiter caps the requests
in flight over both roles and serves later steps first, so started items finish early. Everything finished is journaled in `work_dir`:

    requests.jsonl           every finished model reply, by request key (never sent twice)
    instructions.jsonl       one line per self-instruct slot: {"key", "lang", "instruction" | null}
    initial_answers.jsonl    one line per answer slot: {"key", "instruction_key", "lang", "instruction", "answer" | null}
    extended_answers.jsonl   one line per extension slot: {"key", "initial_key", "lang", "instruction", "initial", "extended" | null}
    <step>.done.json         written when a step has finished every slot (with its counts)
    generator_data.jsonl, extender_data.jsonl   the fine-tuning sets (chat messages), written last
    synthesis.json           the counts of the finished run; its presence marks the iteration done

A rerun after `kill -9` loads the journals and continues: finished slots are skipped, finished
requests are replayed from the ledger, per-item randomness depends only on seed and key.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selflengthen.backend import TextBackend
from selflengthen.config import SelfLengthenConfig
from selflengthen.extender import extend_response
from selflengthen.filters import drop_short
from selflengthen.generator import generate_initial
from selflengthen.journal import Journal, write_json_atomically, write_jsonl_atomically
from selflengthen.limiter import PriorityLimiter
from selflengthen.recorded_model import RecordedModel, RequestStats, item_rng
from selflengthen.self_instruct import load_seed_instructions, self_instruct
from selflengthen.training_data import build_extender_data, build_generator_data

INSTRUCTIONS = "instructions"
INITIAL_ANSWERS = "initial_answers"
EXTENDED_ANSWERS = "extended_answers"
GENERATOR_DATA = "generator_data.jsonl"
EXTENDER_DATA = "extender_data.jsonl"
RESULT_FILE = "synthesis.json"
OUTPUT_FIELD = {INSTRUCTIONS: "instruction", INITIAL_ANSWERS: "answer", EXTENDED_ANSWERS: "extended"}
"""Each step's journal, and the record field that holds what a slot produced (null: it gave up)."""

Progress = Callable[[str], None]
"""Called with the step name (instructions, initial_answers, extended_answers) as each slot finishes."""


@dataclass
class SynthesisResult:
    """What one iteration produced (totals over every run of it) and what this run sent."""

    instructions: int = 0
    instruction_slots_failed: int = 0
    initial_answers: int = 0
    initial_slots_failed: int = 0
    extended_answers: int = 0
    extension_slots_failed: int = 0
    generator_examples: int = 0
    extender_examples: int = 0
    requests: RequestStats = field(default_factory=RequestStats)
    rejections: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


async def run_synthesis(
    generator: TextBackend,
    extender: TextBackend,
    config: SelfLengthenConfig,
    work_dir: Path,
    progress: Progress | None = None,
) -> SynthesisResult:
    """Run (or resume) one synthesis iteration in `work_dir` and write the two fine-tuning sets there."""
    started = time.monotonic()
    work_dir = Path(work_dir)
    seeds = {lang: load_seed_instructions(config.seed_file(lang)) for lang in config.languages}
    run = _Synthesis(generator, extender, config, work_dir, progress or (lambda step: None))
    try:
        await run.run(seeds)
        result = run.result()
    finally:
        run.close()
    result.seconds = round(time.monotonic() - started, 3)
    write_json_atomically(work_dir / RESULT_FILE, asdict(result))
    return result


class _Synthesis:
    """The state of one iteration's run: journals, the shared request cap, the running tasks."""

    def __init__(self, generator, extender, config: SelfLengthenConfig, work_dir: Path, progress: Progress) -> None:
        self.config = config
        self.work_dir = work_dir
        self.progress = progress
        self.ledger = Journal(work_dir / "requests.jsonl")
        self.journals = {step: Journal(work_dir / f"{step}.jsonl") for step in OUTPUT_FIELD}
        self.stats = RequestStats()
        limiter = PriorityLimiter(config.max_in_flight)
        self.extender = RecordedModel(extender, self.ledger, limiter, self.stats, priority=0)
        self.generator = RecordedModel(generator, self.ledger, limiter, self.stats, priority=1)
        self.instructor = RecordedModel(generator, self.ledger, limiter, self.stats, priority=2)
        self.tally: Counter[str] = Counter()
        self.answer_tasks: list[asyncio.Task] = []
        self.extension_tasks: list[asyncio.Task] = []

    def close(self) -> None:
        for journal in (self.ledger, *self.journals.values()):
            journal.close()

    async def run(self, seeds: dict[str, list[str]]) -> None:
        async with asyncio.TaskGroup() as group:
            self.group = group
            slots = []
            for lang, pool in seeds.items():
                pool = list(pool)
                if self.config.self_instruct.include_seeds:
                    for index, instruction in enumerate(pool):
                        self._answer(f"seed/{lang}/{index}", instruction, lang)
                pool += self._finished_instructions(lang)
                for index in range(self.config.self_instruct.instructions_per_language):
                    slots.append(group.create_task(self._instruction_slot(f"si/{lang}/{index}", lang, pool)))
            await asyncio.gather(*slots)
            self._mark_done(INSTRUCTIONS)
            await asyncio.gather(*self.answer_tasks)
            self._mark_done(INITIAL_ANSWERS)
            await asyncio.gather(*self.extension_tasks)
            self._mark_done(EXTENDED_ANSWERS)

    def _finished_instructions(self, lang: str) -> list[str]:
        records = [r for r in self.journals[INSTRUCTIONS].records.values() if r["lang"] == lang and r["instruction"]]
        return [r["instruction"] for r in sorted(records, key=lambda r: int(r["key"].rsplit("/", 1)[1]))]

    async def _instruction_slot(self, key: str, lang: str, pool: list[str]) -> None:
        journal = self.journals[INSTRUCTIONS]
        record = journal.get(key)
        if record is None:
            instruction = await self_instruct(self.instructor, pool, key, lang, self.config, self.tally)
            record = {"key": key, "lang": lang, "instruction": instruction}
            journal.append(record)
            if instruction is not None:
                pool.append(instruction)
            self.progress(INSTRUCTIONS)
        if record["instruction"] is not None:
            self._answer(key, record["instruction"], lang)

    def _answer(self, instruction_key: str, instruction: str, lang: str) -> None:
        for sample in range(self.config.generator.samples_per_instruction):
            key = f"gen/{instruction_key}/{sample}"
            self.answer_tasks.append(self.group.create_task(self._answer_slot(key, instruction_key, instruction, lang)))

    async def _answer_slot(self, key: str, instruction_key: str, instruction: str, lang: str) -> None:
        journal = self.journals[INITIAL_ANSWERS]
        record = journal.get(key)
        if record is None:
            answer = await generate_initial(self.generator, instruction, lang, key, self.config, self.tally)
            record = {"key": key, "instruction_key": instruction_key, "lang": lang, "instruction": instruction, "answer": answer}
            journal.append(record)
            self.progress(INITIAL_ANSWERS)
        if record["answer"] is not None:
            for sample in range(self.config.extender.extensions_per_answer):
                task = self._extension_slot(f"ext/{key}/{sample}", record)
                self.extension_tasks.append(self.group.create_task(task))

    async def _extension_slot(self, key: str, initial: dict[str, Any]) -> None:
        journal = self.journals[EXTENDED_ANSWERS]
        if key in journal:
            return
        lang, instruction, answer = initial["lang"], initial["instruction"], initial["answer"]
        extended = await extend_response(self.extender, instruction, answer, lang, key, self.config, self.tally)
        journal.append(
            {"key": key, "initial_key": initial["key"], "lang": lang, "instruction": instruction, "initial": answer, "extended": extended}
        )
        self.progress(EXTENDED_ANSWERS)

    def _mark_done(self, step: str) -> None:
        produced, failed = _outcomes(self.journals[step], step)
        write_json_atomically(self.work_dir / f"{step}.done.json", {"produced": produced, "failed": failed})

    def result(self) -> SynthesisResult:
        config = self.config
        extended = sorted(
            (r for r in self.journals[EXTENDED_ANSWERS].records.values() if r["extended"] is not None), key=lambda r: r["key"]
        )
        if config.filters.drop_short:
            extended = drop_short(extended, item_rng(config.seed, "drop_short"), length=lambda r: len(r["extended"]))
        generator_examples = write_jsonl_atomically(self.work_dir / GENERATOR_DATA, build_generator_data(extended))
        extender_rows = build_extender_data(extended, lambda key: item_rng(config.seed, f"lines/{key}"))
        extender_examples = write_jsonl_atomically(self.work_dir / EXTENDER_DATA, extender_rows)
        counts = {step: _outcomes(self.journals[step], step) for step in OUTPUT_FIELD}
        return SynthesisResult(
            instructions=counts[INSTRUCTIONS][0],
            instruction_slots_failed=counts[INSTRUCTIONS][1],
            initial_answers=counts[INITIAL_ANSWERS][0],
            initial_slots_failed=counts[INITIAL_ANSWERS][1],
            extended_answers=counts[EXTENDED_ANSWERS][0],
            extension_slots_failed=counts[EXTENDED_ANSWERS][1],
            generator_examples=generator_examples,
            extender_examples=extender_examples,
            requests=self.stats,
            rejections=dict(sorted(self.tally.items())),
        )


def _outcomes(journal: Journal, step: str) -> tuple[int, int]:
    """(slots that produced something, slots that gave up) in a step's journal."""
    produced = sum(1 for r in journal.records.values() if r[OUTPUT_FIELD[step]] is not None)
    return produced, len(journal.records) - produced
