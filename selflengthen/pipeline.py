"""One Self-Lengthen synthesis iteration, streamed: self-instruct -> generate -> filter -> extend -> filter.

No step waits for the stragglers of the one before: an instruction is answered as soon as it is
accepted, an answer is extended as soon as it passes the filters. One limiter caps the requests
in flight over both roles and serves later steps first, so started items finish early.
`drop_short` needs the whole population, so it thins the extended answers when the fine-tuning
sets are written, at the end. Everything finished is journaled in `work_dir`:

    requests.jsonl           every finished model reply, by request key (never sent twice)
    instructions.jsonl       one line per self-instruct slot: {"key", "lang", "instruction" | null}
    initial_answers.jsonl    one line per answer slot:
                             {"key", "instruction_key", "lang", "instruction", "answer" | null}
    extended_answers.jsonl   one line per extension slot:
                             {"key", "initial_key", "lang", "instruction", "initial", "extended" | null}
    <step>.done.json         written when a step has settled (produced / failed / abandoned counts)
    generator_data.jsonl, extender_data.jsonl   the fine-tuning sets (chat messages), written last
    attempts.jsonl           each attempt's seconds, requests and rejections (journaled_run.py)
    synthesis.json           the totals of the finished run; its presence marks the iteration done

A rerun after `kill -9` loads the journals and continues: finished slots are skipped, finished
requests are replayed from the ledger, per-item randomness depends only on seed and key.
With `stop_at_fraction` set, a step ends once that share of its slots has finished; the rest are
journaled as abandoned (`"abandoned": true`, output null) so a rerun leaves them alone.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.backend import TextBackend
from selflengthen.config import SelfLengthenConfig
from selflengthen.extender import extend_response
from selflengthen.filters import drop_short
from selflengthen.generator import generate_initial
from infra.journal import Journal, write_json_atomically, write_jsonl_atomically
from infra.recorded_model import RequestStats
from infra.rng import item_rng
from selflengthen.journaled_run import JournaledRun, OnItemDone, cancel_all
from selflengthen.self_instruct import InstructionPool, load_seed_instructions, self_instruct
from selflengthen.sft_data import build_extender_data, build_generator_data
from selflengthen.text import count_words

INSTRUCTIONS = "instructions"
INITIAL_ANSWERS = "initial_answers"
EXTENDED_ANSWERS = "extended_answers"
GENERATOR_DATA = "generator_data.jsonl"
EXTENDER_DATA = "extender_data.jsonl"
RESULT_FILE = "synthesis.json"
OUTPUT_FIELD = {INSTRUCTIONS: "instruction", INITIAL_ANSWERS: "answer", EXTENDED_ANSWERS: "extended"}
"""Each step's journal, and the record field that holds what a slot produced (null: it gave up)."""



@dataclass
class SynthesisResult:
    """What one iteration produced and what it cost: totals over every attempt of it (journaled_run.py)."""

    instructions: int = 0
    instruction_slots_failed: int = 0
    initial_answers: int = 0
    initial_slots_failed: int = 0
    extended_answers: int = 0
    extension_slots_failed: int = 0
    generator_examples: int = 0
    extender_examples: int = 0
    abandoned_slots: int = 0
    requests: RequestStats = field(default_factory=RequestStats)
    rejections: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


async def run_synthesis(
    generator: TextBackend,
    extender: TextBackend,
    config: SelfLengthenConfig,
    work_dir: Path,
    on_item_done: OnItemDone | None = None,
) -> SynthesisResult:
    """Run (or resume) one synthesis iteration in `work_dir` and write the two fine-tuning sets there."""
    work_dir = Path(work_dir)
    seeds = {lang: load_seed_instructions(config.seed_file(lang)) for lang in config.languages}
    run = _Synthesis(generator, extender, config, work_dir, on_item_done)
    try:
        await run.run(seeds)
        result = run.finish()
    finally:
        run.close()
    write_json_atomically(work_dir / RESULT_FILE, asdict(result))
    return result


class _Synthesis(JournaledRun):
    """One iteration's run: the journaled run, the roles through its shared cap, the running tasks."""

    def __init__(self, generator, extender, config: SelfLengthenConfig, work_dir: Path,
                 on_item_done: OnItemDone | None) -> None:
        super().__init__(work_dir, config.max_in_flight, on_item_done, config.seed)
        self.config = config
        self.extender = self.recorded(extender, priority=0)
        self.generator = self.recorded(generator, priority=1)
        self.instructor = self.recorded(generator, priority=2)
        self.tasks: list[asyncio.Task] = []
        self.answer_tasks: list[asyncio.Task] = []
        self.extension_tasks: list[asyncio.Task] = []
        self.cutting_off = False

    async def run(self, seeds: dict[str, list[str]]) -> None:
        slots = []
        for lang, seed_instructions in seeds.items():
            if self.config.self_instruct.include_seeds:
                for index, instruction in enumerate(seed_instructions):
                    self._answer(f"seed/{lang}/{index}", instruction, lang)
            pool = InstructionPool(seed_instructions + self._finished_instructions(lang))
            for index in range(self.config.self_instruct.instructions_per_language):
                slots.append(self._spawn(self._instruction_slot(f"si/{lang}/{index}", lang, pool)))
        try:
            await self._settle(slots, INSTRUCTIONS)
            await self._settle(self.answer_tasks, INITIAL_ANSWERS)
            await self._settle(self.extension_tasks, EXTENDED_ANSWERS)
        except BaseException:
            self.cutting_off = False
            await cancel_all(self.tasks)
            raise

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self.tasks.append(task)
        return task

    async def _settle(self, tasks: list[asyncio.Task], step: str) -> None:
        """Wait for a step's slots (all, or the `stop_at_fraction` share of them), then mark it done.

        Called once the step before has settled, so `tasks` is the step's complete list.
        """
        fraction = self.config.stop_at_fraction
        needed = len(tasks) if fraction is None else math.ceil(fraction * len(tasks))
        pending = set(tasks)
        while pending and len(tasks) - len(pending) < needed:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        if pending:
            self.cutting_off = True
            await cancel_all(pending)
            self.cutting_off = False
        self._mark_done(step)

    async def _finish_slot(
        self, step: str, record: dict[str, Any], produce: Callable[[], Awaitable[str | None]]
    ) -> dict[str, Any]:
        """The slot's journaled record; a slot abandoned by the cut-off is journaled as given up, so a rerun does not revive it."""
        output = OUTPUT_FIELD[step]

        async def produced() -> dict[str, Any]:
            return {output: await produce()}

        try:
            return await self.finish_item(step, record, produced)
        except asyncio.CancelledError:
            if self.cutting_off:
                self.journal(step).append({**record, output: None, "abandoned": True})
            raise

    def _finished_instructions(self, lang: str) -> list[str]:
        records = [r for r in self.journal(INSTRUCTIONS).records.values() if r["lang"] == lang and r["instruction"]]
        return [r["instruction"] for r in sorted(records, key=lambda r: int(r["key"].rsplit("/", 1)[1]))]

    async def _instruction_slot(self, key: str, lang: str, pool: InstructionPool) -> None:
        record = await self._finish_slot(
            INSTRUCTIONS,
            {"key": key, "lang": lang},
            lambda: self_instruct(self.instructor, pool, key, lang, self.config, self.tally),
        )
        if record["instruction"] is not None:
            self._answer(key, record["instruction"], lang)

    def _answer(self, instruction_key: str, instruction: str, lang: str) -> None:
        for sample in range(self.config.generator.samples_per_instruction):
            key = f"gen/{instruction_key}/{sample}"
            self.answer_tasks.append(self._spawn(self._answer_slot(key, instruction_key, instruction, lang)))

    async def _answer_slot(self, key: str, instruction_key: str, instruction: str, lang: str) -> None:
        record = await self._finish_slot(
            INITIAL_ANSWERS,
            {"key": key, "instruction_key": instruction_key, "lang": lang, "instruction": instruction},
            lambda: generate_initial(self.generator, instruction, lang, key, self.config, self.tally),
        )
        if record["answer"] is not None:
            for sample in range(self.config.extender.extensions_per_answer):
                self.extension_tasks.append(self._spawn(self._extension_slot(f"ext/{key}/{sample}", record)))

    async def _extension_slot(self, key: str, initial: dict[str, Any]) -> None:
        lang, instruction, answer = initial["lang"], initial["instruction"], initial["answer"]
        await self._finish_slot(
            EXTENDED_ANSWERS,
            {"key": key, "initial_key": initial["key"], "lang": lang, "instruction": instruction, "initial": answer},
            lambda: extend_response(self.extender, instruction, answer, lang, key, self.config, self.tally),
        )

    def _mark_done(self, step: str) -> None:
        produced, failed, abandoned = _outcomes(self.journal(step), step)
        write_json_atomically(
            self.work_dir / f"{step}.done.json", {"produced": produced, "failed": failed, "abandoned": abandoned}
        )

    def finish(self) -> SynthesisResult:
        """Write the fine-tuning sets from the extended answers and count what the iteration produced."""
        config = self.config
        extended = sorted(
            (r for r in self.journal(EXTENDED_ANSWERS).records.values() if r["extended"] is not None),
            key=lambda r: r["key"],
        )
        if config.filters.drop_short:
            extended = drop_short(
                extended, item_rng(config.seed, "drop_short"), length=lambda r: count_words(r["extended"])
            )
        generator_examples = write_jsonl_atomically(self.work_dir / GENERATOR_DATA, build_generator_data(extended))
        extender_rows = build_extender_data(extended, lambda key: item_rng(config.seed, f"lines/{key}"))
        extender_examples = write_jsonl_atomically(self.work_dir / EXTENDER_DATA, extender_rows)
        counts = {step: _outcomes(self.journal(step), step) for step in OUTPUT_FIELD}
        seconds, requests, rejections = self.totals()
        return SynthesisResult(
            abandoned_slots=sum(count[2] for count in counts.values()),
            instructions=counts[INSTRUCTIONS][0],
            instruction_slots_failed=counts[INSTRUCTIONS][1],
            initial_answers=counts[INITIAL_ANSWERS][0],
            initial_slots_failed=counts[INITIAL_ANSWERS][1],
            extended_answers=counts[EXTENDED_ANSWERS][0],
            extension_slots_failed=counts[EXTENDED_ANSWERS][1],
            generator_examples=generator_examples,
            extender_examples=extender_examples,
            requests=requests,
            rejections=rejections,
            seconds=seconds,
        )


def _outcomes(journal: Journal, step: str) -> tuple[int, int, int]:
    """(slots that produced something, slots that gave up, slots abandoned by the cut-off) of a step."""
    records = journal.records.values()
    produced = sum(1 for r in records if r[OUTPUT_FIELD[step]] is not None)
    abandoned = sum(1 for r in records if r.get("abandoned"))
    return produced, len(records) - produced - abandoned, abandoned
