"""The machine under every data-building run: journaled items over one request ledger and one request cap.

Self-Lengthen synthesis and both baselines are lists of independent items (an instruction to
write, an answer to extend, a text to backtranslate). Each finished item is one journal line,
so a rerun after a crash skips it; each finished model reply is in the request ledger, so a
rerun never sends a request twice; per-item randomness comes from `infra.rng.item_rng`, and each
sampled request's seed from the run's seed and the request's key.
What each attempt cost (seconds, requests, rejections) is journaled in `attempts.jsonl` when it ends,
interrupted or not, so the totals a finished run reports cover every attempt, not only the last.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from infra.backend import TextBackend
from infra.journal import Journal
from infra.limiter import PriorityLimiter
from infra.recorded_model import RecordedModel, RequestStats

OnItemDone = Callable[[str], None]
"""Called with the step's name each time one of its items finishes (drives a progress bar)."""

ATTEMPTS = "attempts.jsonl"


class JournaledRun:
    """The ledger, the step journals, the request cap and the rejection tally of one run in `work_dir`."""

    def __init__(self, work_dir: Path, max_in_flight: int, on_item_done: OnItemDone | None = None,
                 seed: int | None = None) -> None:
        self.work_dir = Path(work_dir)
        self.seed = seed
        self.ledger = Journal(self.work_dir / "requests.jsonl")
        self.journals: dict[str, Journal] = {}
        self.stats = RequestStats()
        self.limiter = PriorityLimiter(max_in_flight)
        self.tally: Counter[str] = Counter()
        self.on_item_done = on_item_done or (lambda step: None)
        self.started = time.monotonic()
        self.attempts = Journal(self.work_dir / ATTEMPTS)
        self.attempt_ended = False

    def recorded(self, backend: TextBackend, priority: int = 0) -> RecordedModel:
        """`backend` seen through the ledger and the shared cap; a lower `priority` number is served first."""
        return RecordedModel(backend, self.ledger, self.limiter, self.stats, priority, self.seed)

    def journal(self, step: str) -> Journal:
        if step not in self.journals:
            self.journals[step] = Journal(self.work_dir / f"{step}.jsonl")
        return self.journals[step]

    async def finish_item(
        self, step: str, record: dict[str, Any], produce: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """The item's record (`record` holds its "key"): journaled by a run before, or produced and journaled now."""
        journal = self.journal(step)
        finished = journal.get(record["key"])
        if finished is not None:
            return finished
        record = {**record, **await produce()}
        journal.append(record)
        self.on_item_done(step)
        return record

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def end_attempt(self) -> None:
        """Journal this attempt's seconds, requests and rejections (once; `close` does it if nobody did)."""
        if self.attempt_ended:
            return
        self.attempt_ended = True
        self.attempts.append({"key": str(len(self.attempts.records) + 1), "seconds": self.seconds(),
                              "requests": asdict(self.stats), "rejections": dict(self.tally)})

    def totals(self) -> tuple[float, RequestStats, dict[str, int]]:
        """Seconds, request counts and rejections summed over every attempt of this run, this one included.

        `sent` is the ledger's count of replies, so it includes an attempt killed before it could
        journal itself (kill -9); that attempt's seconds and other counts are lost with it. A reply
        replayed from the ledger after an interrupt is counted as `replayed`, not `sent` again; a
        filter that turns it away again counts it again (as a retried reply is).
        """
        self.end_attempt()
        records = self.attempts.records.values()
        requests = RequestStats(**{f.name: sum(r["requests"].get(f.name, 0) for r in records)
                                   for f in fields(RequestStats)})
        requests.sent = len(self.ledger.records)
        rejections: Counter[str] = Counter()
        for record in records:
            rejections.update(record["rejections"])
        return round(sum(r["seconds"] for r in records), 3), requests, dict(sorted(rejections.items()))

    def close(self) -> None:
        self.end_attempt()
        for journal in (self.ledger, self.attempts, *self.journals.values()):
            journal.close()


async def gather_or_cancel(tasks: Iterable[asyncio.Future]) -> list[Any]:
    """Every task's result in order; on the first failure (or cancellation) the others are cancelled and awaited."""
    tasks = list(tasks)
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        await cancel_all(tasks)
        raise


async def cancel_all(tasks: Iterable[asyncio.Future]) -> None:
    """Cancel the tasks and wait until each has stopped, so no journal is written after we return."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
