"""What both baselines share: journaled items over one request ledger, and the data and stats they end with.

A baseline is a list of independent items (a text to backtranslate, an instruction to answer).
Each finished item is one journal line, so a rerun after a crash skips it; each finished model
reply is in the request ledger, so a rerun never sends a request twice. At the end the kept
items become chat-message training rows (the format `train_role` reads, as the Self-Lengthen
Generator data) and `stats.json` says how many there are, how long, and what failed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.backend import TextBackend
from infra.journal import Journal, write_json_atomically, write_jsonl_atomically
from infra.limiter import PriorityLimiter
from infra.recorded_model import RecordedModel, RequestStats
from selflengthen.text import count_words
from selflengthen.training_data import chat_example

DATA_FILE = "data.jsonl"
STATS_FILE = "stats.json"
KEPT = "kept"
"""The outcome of an item whose (instruction, answer) pair goes into the training data."""

Progress = Callable[[str], None]
"""Called with the step name as each item of that step finishes."""


@dataclass
class BaselineDataResult:
    """A baseline's training data and what it took: the numbers `stats.json` also holds."""

    arm: str
    data_file: Path
    stats_file: Path
    samples: int
    answer_words_mean: float | None
    items: int
    outcomes: dict[str, int] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)
    requests: RequestStats = field(default_factory=RequestStats)
    seconds: float = 0.0


class BaselineRun:
    """The journals, the request ledger and the request cap of one baseline's data run in `work_dir`."""

    def __init__(self, backend: TextBackend, work_dir: Path, max_in_flight: int, progress: Progress | None) -> None:
        self.work_dir = Path(work_dir)
        self.ledger = Journal(self.work_dir / "requests.jsonl")
        self.journals: dict[str, Journal] = {}
        self.stats = RequestStats()
        self.model = RecordedModel(backend, self.ledger, PriorityLimiter(max_in_flight), self.stats)
        self.tally: Counter[str] = Counter()
        self.progress = progress or (lambda step: None)
        self.started = time.monotonic()

    def journal(self, step: str) -> Journal:
        if step not in self.journals:
            self.journals[step] = Journal(self.work_dir / f"{step}.jsonl")
        return self.journals[step]

    def close(self) -> None:
        for journal in (self.ledger, *self.journals.values()):
            journal.close()

    async def run_items(
        self, step: str, items: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]]
    ) -> list[dict[str, Any]]:
        """Each item's record, in the given order: journaled by an earlier run, or produced and journaled now.

        `items` pairs a unique key with a coroutine function that returns the item's record.
        """
        journal = self.journal(step)

        async def finish(key: str, produce: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
            finished = journal.get(key)
            if finished is not None:
                return finished
            record = {"key": key, **await produce()}
            journal.append(record)
            self.progress(step)
            return record

        tasks = [asyncio.ensure_future(finish(key, produce)) for key, produce in items]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def finish(self, arm: str, records: list[dict[str, Any]], max_samples: int | None) -> BaselineDataResult:
        """Write the kept records (at most `max_samples`, in order) as training rows, and `stats.json`."""
        kept = [r for r in records if r["outcome"] == KEPT][:max_samples]
        data_file = self.work_dir / DATA_FILE
        rows = [chat_example([{"role": "user", "content": r["instruction"]}], r["answer"]) for r in kept]
        write_jsonl_atomically(data_file, rows)
        lengths = [count_words(r["answer"]) for r in kept]
        result = BaselineDataResult(
            arm=arm,
            data_file=data_file,
            stats_file=self.work_dir / STATS_FILE,
            samples=len(kept),
            answer_words_mean=sum(lengths) / len(lengths) if lengths else None,
            items=len(records),
            outcomes=dict(sorted(Counter(r["outcome"] for r in records).items())),
            rejections=dict(sorted(self.tally.items())),
            requests=self.stats,
            seconds=round(time.monotonic() - self.started, 3),
        )
        write_json_atomically(result.stats_file, stats_payload(result))
        return result


def stats_payload(result: BaselineDataResult) -> dict[str, Any]:
    """`stats.json` before training: the arm's sample count and mean length; training fills in its tokens."""
    payload = asdict(result)
    payload.update(data_file=str(result.data_file), stats_file=str(result.stats_file), train_tokens=None)
    return payload
