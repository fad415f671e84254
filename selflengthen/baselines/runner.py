"""What both baselines share: a journaled run of items (`JournaledRun`), and the data and stats they end with.

A baseline is a list of independent items (a text to backtranslate, an instruction to answer).
At the end the kept items become chat-message training rows (the format `train_role` reads, as the Self-Lengthen
Generator data) and `stats.json` says how many there are, how long, and what failed.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from infra.backend import TextBackend
from infra.journal import write_json_atomically, write_jsonl_atomically
from infra.recorded_model import RequestStats
from selflengthen.journaled_run import JournaledRun, OnItemDone, gather_or_cancel
from selflengthen.text import count_words
from selflengthen.sft_data import chat_example

DATA_FILE = "data.jsonl"
STATS_FILE = "stats.json"
KEPT = "kept"
"""The outcome of an item whose (instruction, answer) pair goes into the training data."""

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


class BaselineRun(JournaledRun):
    """A baseline's data run in `work_dir`: one model through the ledger, items journaled per step."""

    def __init__(self, backend: TextBackend, work_dir: Path, max_in_flight: int, on_item_done: OnItemDone | None,
                 seed: int | None = None) -> None:
        super().__init__(work_dir, max_in_flight, on_item_done, seed)
        self.model = self.recorded(backend)

    async def run_items(
        self, step: str, items: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]]
    ) -> list[dict[str, Any]]:
        """Each item's record, in the given order: journaled by an earlier run, or produced and journaled now.

        `items` pairs a unique key with a coroutine function that returns the item's record.
        """
        return await gather_or_cancel(
            asyncio.ensure_future(self.finish_item(step, {"key": key}, produce)) for key, produce in items
        )

    def finish(self, arm: str, records: list[dict[str, Any]], max_samples: int | None) -> BaselineDataResult:
        """Write the kept records (at most `max_samples`, in order) as training rows, and `stats.json`."""
        kept = [r for r in records if r["outcome"] == KEPT][:max_samples]
        data_file = self.work_dir / DATA_FILE
        rows = [chat_example([{"role": "user", "content": r["instruction"]}], r["answer"]) for r in kept]
        write_jsonl_atomically(data_file, rows)
        lengths = [count_words(r["answer"]) for r in kept]
        seconds, requests, rejections = self.totals()  # over every attempt, an interrupted one included
        result = BaselineDataResult(
            arm=arm,
            data_file=data_file,
            stats_file=self.work_dir / STATS_FILE,
            samples=len(kept),
            answer_words_mean=sum(lengths) / len(lengths) if lengths else None,
            items=len(records),
            outcomes=dict(sorted(Counter(r["outcome"] for r in records).items())),
            rejections=rejections,
            requests=requests,
            seconds=seconds,
        )
        write_json_atomically(result.stats_file, stats_payload(result))
        return result


def finished_data_result(work_dir: Path) -> BaselineDataResult | None:
    """The result of a data run that finished in `work_dir` before (its data and stats are there), else None."""
    work_dir = Path(work_dir)
    if not (work_dir / STATS_FILE).is_file() or not (work_dir / DATA_FILE).is_file():
        return None
    stats = json.loads((work_dir / STATS_FILE).read_text(encoding="utf-8"))
    names = {f.name for f in fields(BaselineDataResult)}
    result = BaselineDataResult(**{k: v for k, v in stats.items() if k in names})
    result.data_file, result.stats_file = Path(result.data_file), Path(result.stats_file)
    result.requests = RequestStats(**result.requests) if isinstance(result.requests, dict) else result.requests
    return result


def why_no_samples(result: BaselineDataResult) -> str | None:
    """Why the arm cannot be trained (no sample was kept, with the items' outcomes), or None when it can."""
    if result.samples:
        return None
    outcomes = ", ".join(f"{name} {count}" for name, count in result.outcomes.items()) or "no items"
    return f"no training sample was kept ({outcomes}); see {result.data_file.parent}"


def stats_payload(result: BaselineDataResult) -> dict[str, Any]:
    """`stats.json` before training: the arm's sample count and mean length; training fills in its tokens."""
    payload = asdict(result)
    payload.update(data_file=str(result.data_file), stats_file=str(result.stats_file), train_tokens=None)
    return payload
