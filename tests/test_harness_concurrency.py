"""`self_lengthen.max_in_flight` reaches the endpoint clients: more than 8 requests are in flight at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness.synthesis.backends as synthesis_backends
from harness.serving.serve import Endpoint
from harness.synthesis.backends import SynthesisBackendConfig, role_backends
from harness.serving.serve import ServerConfig
from selflengthen.config import GeneratorConfig, ExtenderConfig, SelfInstructConfig, SelfLengthenConfig
from selflengthen.pipeline import run_synthesis


class RecordingEndpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers after a pause and records the most requests in flight."""

    lock = threading.Condition()
    in_flight = 0
    peak = 0
    replies = 0
    hold_until = 20  # requests wait (at most 10 s) until this many are in flight at once, so timing cannot hide it

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.peak = max(cls.peak, cls.in_flight)
            cls.replies += 1
            number = cls.replies
            cls.lock.notify_all()
            cls.lock.wait_for(lambda: cls.peak >= cls.hold_until, timeout=10)
            cls.in_flight -= 1
        # Distinct texts: self-instruct holds back a candidate another slot is already having judged.
        text = f"Write a long story about river number {number} in about 500 words."
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        if self.path.endswith("/chat/completions"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [choice], "usage": usage}
        else:
            reply = {"id": "x", "object": "text_completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": usage}
        payload = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_synthesis_keeps_max_in_flight_requests_in_flight_above_eight(tiny_model_dir, tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"

    @contextlib.contextmanager
    def recorded_server(model, config, log_path=None):  # the real server process is replaced by the recorder
        yield Endpoint(base_url=url, model=model, kind="vllm", tokenizer=str(tiny_model_dir))

    monkeypatch.setattr(synthesis_backends, "serve", recorded_server)
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": f"Write an essay about topic {i}."}) + "\n" for i in range(4)))
    method = SelfLengthenConfig(
        iterations=1, seed_files={"en": str(seeds)}, max_in_flight=20,
        self_instruct=SelfInstructConfig(instructions_per_language=40, max_attempts=1),
        generator=GeneratorConfig(samples_per_instruction=1, max_attempts=1),
        extender=ExtenderConfig(extensions_per_answer=1, max_attempts=1, rounds=1),
    )
    backend = SynthesisBackendConfig(kind="endpoint", server=ServerConfig(kind="vllm"))
    try:
        with role_backends(str(tiny_model_dir), {"generator": None, "extender": None}, backend, tmp_path,
                           method.max_in_flight) as (generator, extender):
            asyncio.run(run_synthesis(generator, extender, method, tmp_path / "iter_1"))
    finally:
        server.shutdown()
    assert RecordingEndpoint.peak == 20
