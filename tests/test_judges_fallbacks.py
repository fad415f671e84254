"""The judge on endpoints that honour neither logprobs nor the JSON schema (fault-injection clients; the
same against a real server process is in test_judges_plain_endpoint.py)."""

from __future__ import annotations

import asyncio

from infra.backend import Completion, MissingLogprobs
from judges import JudgeConfig, judge_scores
from tests.test_judges_runner import scores_json, uniform_reply

ALL = frozenset({"json_schema", "top_logprobs"})


class PlainEndpoint:
    """Says it honours both fields (as a generic OpenAI endpoint is assumed to); answers without logprobs,
    and with `refuse_schema` fails every request that carries the schema, as an HTTP 400 would."""

    features = ALL

    def __init__(self, refuse_schema: bool = False):
        self.refuse_schema = refuse_schema
        self.requests: list[tuple[bool, bool]] = []  # (schema sent, logprobs asked) per request

    async def chat(self, messages, sampling) -> Completion:
        self.requests.append((sampling.json_schema is not None, sampling.top_logprobs is not None))
        if self.refuse_schema and sampling.json_schema is not None:
            raise RuntimeError("HTTP 400: response_format is not supported")
        reply = Completion(uniform_reply(messages, 4))
        if sampling.top_logprobs is not None:
            raise MissingLogprobs("top_logprobs was asked for but the endpoint returned no logprobs", reply)
        return reply


def judged(client, **settings) -> dict:
    scores = scores_json(n_lbw=3, n_longen=0, n_ruler=0)
    return asyncio.run(judge_scores(scores, client, JudgeConfig(model="judge", **settings), progress=False))


def test_replies_without_logprobs_score_their_parsed_values_and_are_counted():
    client = PlainEndpoint()
    result = judged(client)
    entry = result["tasks"]["longbench_write_en_mini"]
    assert (entry["S_q"], entry["failures"], entry["without_logprobs"], entry["weighted_samples"]) == (75.0, 0, 3, 0)
    assert [s["without_logprobs"] for s in entry["samples"]] == [True] * 3
    assert result["judge"]["top_logprobs"] == 20 and client.requests == [(True, True)] * 3


def test_without_logprobs_asked_nothing_is_counted_as_a_fallback():
    entry = judged(PlainEndpoint(), top_logprobs=0)["tasks"]["longbench_write_en_mini"]
    assert entry["without_logprobs"] == 0 and entry["S_q"] == 75.0


def test_a_refused_schema_is_dropped_for_the_rest_of_the_pass_and_said_so():
    client = PlainEndpoint(refuse_schema=True)
    result = judged(client, max_concurrency=1)
    assert result["tasks"]["longbench_write_en_mini"]["S_q"] == 75.0
    assert "HTTP 400: response_format is not supported" in result["judge"]["schema_refused"]
    assert [schema for schema, _ in client.requests] == [True, False, False, False]  # one refusal, then free text


def test_an_endpoint_failing_with_and_without_the_schema_records_failures_not_a_refusal():
    class Down(PlainEndpoint):
        async def chat(self, messages, sampling):
            self.requests.append((sampling.json_schema is not None, True))
            raise RuntimeError("connection refused")

    result = judged(Down(), max_retries=0)
    entry = result["tasks"]["longbench_write_en_mini"]
    assert entry["failures"] == 3 and entry["S_q"] is None and result["judge"]["schema_refused"] is None


def test_structured_always_never_falls_back_to_free_text():
    client = PlainEndpoint(refuse_schema=True)
    result = judged(client, max_retries=0, structured="always")
    assert result["tasks"]["longbench_write_en_mini"]["failures"] == 3
    assert all(schema for schema, _ in client.requests)
