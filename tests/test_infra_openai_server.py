"""The in-process engine behind OpenAI's API: request mapping (fast) and a real server process (slow)."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import urllib.request

import openai
import pytest

from harness.serving.client import EndpointClient
from harness.serving.serve import ServerConfig, free_port, serve, server_command, wait_until_healthy
from infra.backend import Completion, TokenLogprob
from infra.openai_wire import RequestError, chat_request, chat_response, completion_request, completion_response
from infra.sampling import SamplingConfig
from tests.schemas import JUDGE_SCHEMA, follows_judge_schema

CHAT = [{"role": "user", "content": "Rate this essay about the river."}]


def chat_body(**fields):
    return {"model": "m", "messages": CHAT, **fields}


# -- request and response mapping -------------------------------------------------------------


def test_chat_fields_and_extra_fields_become_the_sampling_config():
    _, sampling = chat_request(chat_body(temperature=0.7, top_p=0.9, top_k=20, repetition_penalty=1.1,
                                         max_completion_tokens=64, stop="\n", seed=3, logprobs=True, top_logprobs=4))
    assert sampling == SamplingConfig(temperature=0.7, top_p=0.9, top_k=20, repetition_penalty=1.1, max_tokens=64,
                                      stop=["\n"], seed=3, top_logprobs=4)


def test_an_absent_temperature_samples_at_openais_default_of_one():
    assert chat_request(chat_body())[1].temperature == 1.0


def test_response_format_json_schema_becomes_the_json_schema():
    response_format = {"type": "json_schema", "json_schema": {"name": "scores", "schema": JUDGE_SCHEMA}}
    assert chat_request(chat_body(response_format=response_format))[1].json_schema == JUDGE_SCHEMA


def test_vllms_structured_outputs_json_becomes_the_json_schema():
    _, sampling = completion_request({"prompt": "x", "structured_outputs": {"json": JUDGE_SCHEMA}})
    assert sampling.json_schema == JUDGE_SCHEMA


def test_completion_logprobs_count_is_the_top_logprobs():
    assert completion_request({"prompt": "x", "logprobs": 5})[1].top_logprobs == 5


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 2}, "n"),
    ({"response_format": {"type": "regex"}}, "response_format.type"),
    ({"structured_outputs": {"regex": "a+"}}, "structured_outputs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"stream": True}, "stream"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"top_k": -1}, "top_k"),
    ({"guided_json": {}}, "guided_json"),
])
def test_a_field_that_would_change_the_result_unhonoured_is_refused_naming_it(fields, param):
    with pytest.raises(RequestError) as refused:
        chat_request(chat_body(**fields))
    assert refused.value.param == param and refused.value.status == 400


def test_chat_response_carries_openais_logprobs_content():
    completion = Completion("ab", "stop", 5, 2, [TokenLogprob("a", -0.1, {"a": -0.1, "b": -2.4}),
                                                  TokenLogprob("b", -0.2, {"b": -0.2})])
    body = chat_response(completion, "m")
    content = body["choices"][0]["logprobs"]["content"]
    assert [(c["token"], c["logprob"]) for c in content] == [("a", -0.1), ("b", -0.2)]
    assert content[0]["top_logprobs"] == [{"token": "a", "logprob": -0.1, "bytes": [97]},
                                          {"token": "b", "logprob": -2.4, "bytes": [98]}]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_completion_response_carries_the_legacy_parallel_lists():
    completion = Completion("ab", "length", 5, 2, [TokenLogprob("a", -0.1, {"a": -0.1}), TokenLogprob("b", -0.2, {})])
    logprobs = completion_response(completion, "m")["choices"][0]["logprobs"]
    assert logprobs == {"tokens": ["a", "b"], "token_logprobs": [-0.1, -0.2], "top_logprobs": [{"a": -0.1}, {}],
                        "text_offset": [0, 1]}


def test_the_inprocess_server_kind_runs_this_module_on_loopback_with_its_batch_and_threads():
    command = server_command("/models/m", ServerConfig(kind="inprocess", torch_threads=1, max_batch_size=8), 8123)
    assert command[:3] == [sys.executable, "-m", "infra.openai_server"]
    assert ["--host", "127.0.0.1"] == command[command.index("--host"):][:2]
    assert {"--max-batch": "8", "--torch-threads": "1", "--port": "8123", "--served-model-name": "/models/m"} == {
        flag: command[command.index(flag) + 1] for flag in ("--max-batch", "--torch-threads", "--port", "--served-model-name")
    }


# -- a real server process --------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with serve(str(tiny_model_dir), ServerConfig(kind="inprocess", torch_threads=1), log_path=log) as served:
        yield served


def call(endpoint, *requests):
    """Run client requests (coroutine functions of an EndpointClient) concurrently."""

    async def go():
        client = EndpointClient(endpoint, max_concurrency=32)
        try:
            return await asyncio.gather(*(request(client) for request in requests))
        finally:
            await client.close()

    return asyncio.run(go())


def raw_request(endpoint, **fields):
    """One raw chat request through the openai package, for fields the harness client never sends."""
    client = openai.OpenAI(base_url=endpoint.base_url, api_key="EMPTY", max_retries=0)
    try:
        return client.chat.completions.create(model=endpoint.model, messages=CHAT, **{"max_tokens": 8, **fields})
    finally:
        client.close()


@pytest.mark.slow
def test_sampled_replies_follow_a_judge_schema(endpoint):
    judged = SamplingConfig(temperature=1.0, max_tokens=300, json_schema=JUDGE_SCHEMA)
    replies = call(endpoint, *[lambda c: c.chat(CHAT, judged)] * 20)
    assert [r.text for r in replies if not follows_judge_schema(r.text)] == []
    assert len({r.text for r in replies}) > 1


@pytest.mark.slow
def test_vllm_style_structured_outputs_are_honoured(endpoint):
    reply = raw_request(endpoint, max_tokens=300, extra_body={"structured_outputs": {"json": JUDGE_SCHEMA}})
    assert follows_judge_schema(reply.choices[0].message.content)


@pytest.mark.slow
def test_top_logprobs_come_back_and_cover_the_top_k_distribution(endpoint):
    sampled = SamplingConfig(temperature=1.0, top_k=4, max_tokens=6, top_logprobs=4)
    prompt = "The quick brown"
    chat, raw = call(endpoint, lambda c: c.chat(CHAT, sampled), lambda c: c.complete(prompt, sampled))
    for completion in (chat, raw):
        ended_by_eos = completion.finish_reason == "stop"  # no stop strings: EOS, counted but not shown
        assert len(completion.logprobs) == completion.completion_tokens - ended_by_eos
        for entry in completion.logprobs:
            assert sum(math.exp(v) for v in entry.top.values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_greedy_and_sampled_requests_in_flight_together_keep_their_own_sampling(endpoint):
    greedy = SamplingConfig(max_tokens=16, repetition_penalty=1.3)
    sampled = SamplingConfig(temperature=1.0, max_tokens=16)
    g1, s1, g2, s2 = call(endpoint, *[lambda c, s=s: c.chat(CHAT, s) for s in (greedy, sampled, greedy, sampled)])
    assert g1.text == g2.text and g1.text
    assert s1.text != s2.text


@pytest.mark.slow
def test_a_stop_string_cuts_the_reply(endpoint):
    plain = SamplingConfig(max_tokens=30, repetition_penalty=2.0)
    (full,) = call(endpoint, lambda c: c.complete("Please answer in about 300 words.", plain))
    stop = full.text[3:5]
    stopping = SamplingConfig(max_tokens=30, repetition_penalty=2.0, stop=[stop])
    (cut,) = call(endpoint, lambda c: c.complete("Please answer in about 300 words.", stopping))
    assert (cut.text, cut.finish_reason) == (full.text[: full.text.find(stop)], "stop")


@pytest.mark.slow
def test_a_seed_reproduces_a_sampled_reply(endpoint):
    seeded = SamplingConfig(temperature=1.0, max_tokens=16, seed=11)
    first, second = call(endpoint, lambda c: c.chat(CHAT, seeded), lambda c: c.chat(CHAT, seeded))
    assert first.text == second.text


@pytest.mark.slow
def test_n_above_one_is_a_400_naming_n(endpoint):
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        raw_request(endpoint, n=2)


@pytest.mark.slow
def test_an_unknown_response_format_type_is_a_400_naming_it(endpoint):
    with pytest.raises(openai.BadRequestError, match="response_format type 'grammar'"):
        raw_request(endpoint, response_format={"type": "grammar"})


@pytest.mark.slow
def test_selflengthen_serve_runs_until_ctrl_c(tiny_model_dir, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", str(tiny_model_dir),
                                    "--port", str(port), "--torch-threads", "1"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(process, f"http://127.0.0.1:{port}/health", 300, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as response:
            assert str(tiny_model_dir).encode() in response.read()
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 130  # interrupted, after a clean shutdown
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Finished server process" in log.read_text()


@pytest.mark.slow
def test_the_server_stops_when_its_block_ends(tiny_model_dir, tmp_path):
    with serve(str(tiny_model_dir), ServerConfig(kind="inprocess", torch_threads=1), log_path=tmp_path / "s.log") as served:
        health = served.base_url.removesuffix("/v1") + "/health"
        with urllib.request.urlopen(health, timeout=5) as response:
            assert response.status == 200
    with pytest.raises(OSError):
        urllib.request.urlopen(health, timeout=2)


def test_usage_carries_a_replys_speculative_acceptance_only_where_it_drafted():
    drafted = Completion("ab", "stop", 5, 2, draft_tokens=4, accepted_draft_tokens=3)
    assert chat_response(drafted, "m")["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                                                    "draft_tokens": 4, "accepted_draft_tokens": 3}
    assert "draft_tokens" not in completion_response(Completion("ab", "stop", 5, 2), "m")["usage"]


@pytest.mark.slow
def test_the_server_log_says_how_many_drafts_it_accepted(tiny_model_dir, tmp_path):
    log = tmp_path / "s.log"
    with serve(str(tiny_model_dir), ServerConfig(kind="inprocess", torch_threads=1), log_path=log) as served:
        client = openai.OpenAI(base_url=served.base_url, api_key="EMPTY", max_retries=0)
        with client:
            reply = client.chat.completions.create(model=served.model, max_tokens=32, temperature=0,
                                                   messages=[{"role": "user", "content": "a b a b a b a b"}])
    usage = reply.usage.model_extra
    assert 0 <= usage["accepted_draft_tokens"] <= usage["draft_tokens"] and usage["draft_tokens"] > 0
    summary = next(line for line in log.read_text().splitlines() if line.startswith("speculative decoding: "))
    assert f"{usage['accepted_draft_tokens']} of {usage['draft_tokens']} drafted tokens accepted" in summary
