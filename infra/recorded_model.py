"""A role's backend seen through the request ledger, so a resumed run never re-sends a request.

Every request has a unique key (step, item, attempt, sub-step). A finished reply is journaled
under its key before it is used; a key found in the ledger is answered from it. One limiter,
shared by both roles, caps the requests in flight; each step's model has its own priority.
A backend exception is counted and reported as no reply (the calling step retries within its
bounds); it is not journaled, so a rerun tries that request again. Given the run's seed, a sampled
request without a seed of its own gets one from that seed and its key, so every backend that honours
seeds (the in-process engine, its Ray actors, vLLM) writes the same text for it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from infra.backend import TextBackend
from infra.journal import Journal
from infra.limiter import PriorityLimiter
from infra.rng import item_seed
from infra.sampling import SamplingConfig

log = logging.getLogger(__name__)


@dataclass
class RequestStats:
    """What happened to the requests of one run: sent to a model, replayed from the ledger, failed."""

    sent: int = 0
    replayed: int = 0
    errors: int = 0
    empty: int = 0


class RecordedModel:
    """Chat and raw completion by key, journaled in `ledger`, through `limiter` at `priority`."""

    def __init__(
        self, backend: TextBackend, ledger: Journal, limiter: PriorityLimiter, stats: RequestStats, priority: int = 0,
        seed: int | None = None,
    ) -> None:
        self.backend = backend
        self.ledger = ledger
        self.limiter = limiter
        self.stats = stats
        self.priority = priority
        self.seed = seed

    async def chat(self, key: str, messages: list[dict[str, str]], sampling: SamplingConfig) -> str | None:
        sampling = self.seeded(key, sampling)
        return await self._request(key, lambda: self.backend.chat(messages, sampling))

    async def complete(self, key: str, prompt: str, sampling: SamplingConfig) -> str | None:
        sampling = self.seeded(key, sampling)
        return await self._request(key, lambda: self.backend.complete(prompt, sampling))

    def seeded(self, key: str, sampling: SamplingConfig) -> SamplingConfig:
        """`sampling` with the request's own seed when it samples and has none (and the run has a seed)."""
        if self.seed is None or not sampling.do_sample or sampling.seed is not None:
            return sampling
        return dataclasses.replace(sampling, seed=item_seed(self.seed, f"request/{key}"))

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return self.backend.apply_chat_template(messages)

    async def _request(self, key: str, send) -> str | None:
        recorded = self.ledger.get(key)
        if recorded is not None:
            self.stats.replayed += 1
            return recorded["text"]
        async with self.limiter.slot(self.priority):
            try:
                completion = await send()
                text = completion.text if isinstance(completion.text, str) else ""
            except Exception as error:  # a broken backend must not stop the other items
                self.stats.errors += 1
                log.warning("request %s failed: %s: %s", key, type(error).__name__, error)
                return None
        self.stats.sent += 1
        if not text.strip():
            self.stats.empty += 1
        self.ledger.append({"key": key, "text": text})
        return text

