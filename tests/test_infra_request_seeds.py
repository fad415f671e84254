"""Each sampled request of a run gets its own seed from the run's seed and its key, so a rerun, or another backend
that honours seeds, writes the same text for it; greedy requests and requests with their own seed are sent as given."""

from __future__ import annotations

import asyncio

from infra.journal import Journal
from infra.limiter import PriorityLimiter
from infra.recorded_model import RecordedModel, RequestStats
from infra.sampling import SamplingConfig
from tests.fakes import ScriptedBackend

SAMPLED = SamplingConfig(temperature=0.7)


def seeds_sent(tmp_path, run_seed, requests: list[tuple[str, SamplingConfig]]) -> list[int | None]:
    backend = ScriptedBackend("text")
    model = RecordedModel(backend, Journal(tmp_path / f"ledger-{run_seed}-{len(list(tmp_path.iterdir()))}.jsonl"),
                          PriorityLimiter(4), RequestStats(), seed=run_seed)

    async def send():
        for key, sampling in requests:
            await model.complete(key, "prompt", sampling)

    asyncio.run(send())
    return [request.sampling.seed for request in backend.sent]


def test_a_sampled_request_is_seeded_by_the_run_seed_and_its_key(tmp_path):
    first = seeds_sent(tmp_path, 0, [("gen/a/0", SAMPLED), ("gen/a/1", SAMPLED)])
    assert first == seeds_sent(tmp_path, 0, [("gen/a/0", SAMPLED), ("gen/a/1", SAMPLED)])
    assert None not in first and first[0] != first[1]
    assert seeds_sent(tmp_path, 1, [("gen/a/0", SAMPLED)]) != first[:1]


def test_greedy_requests_and_requests_with_their_own_seed_are_sent_as_given(tmp_path):
    assert seeds_sent(tmp_path, 0, [("a", SamplingConfig()), ("b", SamplingConfig(temperature=0.7, seed=5))]) == [None, 5]
    assert seeds_sent(tmp_path, None, [("c", SAMPLED)]) == [None]
