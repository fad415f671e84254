"""A real `transformers serve` process on loopback: start, generate, sample, fail clearly, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request

import pytest

from harness.serving.client import EndpointClient, EndpointError
from harness.serving.serve import Endpoint, ServerConfig, serve
from infra.sampling import SamplingConfig

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "Write a long essay about the river."}]


def _chat_twice(endpoint: Endpoint, sampling: SamplingConfig) -> tuple[str, str]:
    async def go():
        client = EndpointClient(endpoint, max_concurrency=2)
        try:
            first = await client.chat(PROMPT, sampling)
            second = await client.chat(PROMPT, sampling)
        finally:
            await client.close()
        return first.text, second.text

    return asyncio.run(go())


def test_server_answers_chat_and_raw_completion_then_stops(tiny_model_dir, tmp_path):
    log = tmp_path / "server.log"
    with serve(str(tiny_model_dir), ServerConfig(torch_threads=1), log_path=log) as endpoint:
        assert endpoint.base_url.startswith("http://127.0.0.1:")

        async def go():
            client = EndpointClient(endpoint)
            try:
                chat = await client.chat(PROMPT, SamplingConfig(max_tokens=8))
                prompt = client.apply_chat_template(PROMPT) + "The river"
                raw = await client.complete(prompt, SamplingConfig(max_tokens=8))
            finally:
                await client.close()
            return chat, raw, prompt

        chat, raw, prompt = asyncio.run(go())
        health = endpoint.base_url.removesuffix("/v1") + "/health"
        assert chat.completion_tokens and chat.completion_tokens <= 8
        assert raw.completion_tokens and raw.completion_tokens <= 8
        assert prompt.endswith("<|im_start|>assistant\nThe river")
    with pytest.raises(OSError):
        urllib.request.urlopen(health, timeout=2)
    assert "POST /v1/completions" in log.read_text()


def test_greedy_samples_match_and_sampled_samples_differ(tiny_model_dir, tmp_path):
    # With --continuous-batching the first request's generation config is shared by the
    # server, so each sampling regime gets its own server (as the harness does per role).
    greedy = SamplingConfig(max_tokens=24)
    sampled = SamplingConfig(temperature=1.0, top_p=0.95, top_k=50, repetition_penalty=1.1, max_tokens=24)
    with serve(str(tiny_model_dir), ServerConfig(torch_threads=1), log_path=tmp_path / "g.log") as endpoint:
        a, b = _chat_twice(endpoint, greedy)
    assert a == b and a
    with serve(str(tiny_model_dir), ServerConfig(torch_threads=1), log_path=tmp_path / "s.log") as endpoint:
        c, d = _chat_twice(endpoint, sampled)
    assert c != d


def test_server_killed_mid_request_gives_a_clear_error_instead_of_hanging(tiny_model_dir, tmp_path):
    with serve(str(tiny_model_dir), ServerConfig(torch_threads=1), log_path=tmp_path / "k.log") as endpoint:
        port = int(endpoint.base_url.rsplit(":", 1)[1].split("/")[0])
        pid = _listening_pid(port)

        async def go():
            client = EndpointClient(endpoint, max_retries=1, timeout=20)
            try:
                request = asyncio.create_task(client.chat(PROMPT, SamplingConfig(max_tokens=1500)))
                await asyncio.sleep(1.0)  # the long answer is being generated
                os.killpg(os.getpgid(pid), signal.SIGKILL)
                await request
            finally:
                await client.close()

        started = time.monotonic()
        with pytest.raises(EndpointError, match="cannot reach the endpoint at http://127.0.0.1"):
            asyncio.run(go())
        assert time.monotonic() - started < 30


def test_unreachable_endpoint_is_reported_with_its_address():
    endpoint = Endpoint(base_url="http://127.0.0.1:9/v1", model="m")

    async def go():
        client = EndpointClient(endpoint, max_retries=0, timeout=5)
        try:
            await client.chat(PROMPT, SamplingConfig(max_tokens=4))
        finally:
            await client.close()

    with pytest.raises(EndpointError, match=r"cannot reach the endpoint at http://127.0.0.1:9/v1"):
        asyncio.run(go())


def test_server_that_cannot_start_fails_fast_with_its_log(tmp_path):
    from harness.errors import UserError

    with pytest.raises(UserError, match="exited with code"):
        with serve(str(tmp_path / "no-such-model"), ServerConfig(startup_timeout=120), log_path=tmp_path / "x.log"):
            pass


def _listening_pid(port: int) -> int:
    """The pid of the process listening on `port` (read from /proc, no extra tools)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":
                    inode = parts[9]
    assert inode, f"nothing listens on {port}"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no process owns the socket on {port}")
