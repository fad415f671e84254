"""A plain OpenAI-compatible endpoint for fault injection: a real HTTP server process with fixed replies.

Like many hosted and local endpoints it returns no logprobs and ignores `response_format` (or, with
`--refuse-schema`, answers such a request with HTTP 400). `--delay` holds every reply for that many
seconds, so a test can interrupt a client mid-run. `GET /stats` counts the chat requests it answered.

    python tests/plain_endpoint.py [--reply TEXT] [--delay S] [--refuse-schema]   # prints "port N"

`start_plain_endpoint` runs it for the duration of a `with` block. (No `from __future__ import
annotations` here: FastAPI reads the routes' annotations.)
"""

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPLY = json.dumps({"Relevance": 4, "Accuracy": 4, "Coherence": 4, "Clarity": 4, "Breadth and Depth": 4,
                    "Reading Experience": 4})
"""A well-formed longbench_write rubric reply: every dimension 4 of 5, S_q = 75."""


def main() -> None:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    parser = argparse.ArgumentParser()
    parser.add_argument("--reply", default=REPLY)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--refuse-schema", action="store_true")
    args = parser.parse_args()
    counts = {"requests": 0, "answered": 0, "with_schema": 0, "with_logprobs": 0}
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": "plain", "object": "model"}]}

    @app.get("/stats")
    async def stats() -> dict:
        return counts

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        counts["requests"] += 1
        counts["with_schema"] += "response_format" in body
        counts["with_logprobs"] += bool(body.get("logprobs"))
        if args.refuse_schema and "response_format" in body:
            return JSONResponse({"error": {"message": "response_format is not supported", "type": "invalid_request_error"}},
                                status_code=400)
        await asyncio.sleep(args.delay)
        counts["answered"] += 1
        return {"id": f"chatcmpl-{counts['requests']}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "plain"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": args.reply},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40}}

    sock = socket.create_server(("127.0.0.1", 0))
    print(f"port {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


@contextlib.contextmanager
def start_plain_endpoint(*flags: str) -> Iterator[str]:
    """The endpoint's base URL (`http://127.0.0.1:N/v1`) while the block runs; the process is stopped after."""
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, __file__, *flags], stdout=subprocess.PIPE, text=True, cwd=root,
                               env={**os.environ, "PYTHONPATH": str(root)})
    try:
        line = process.stdout.readline()
        assert line.startswith("port "), f"the plain endpoint did not start: {line!r}"
        url = f"http://127.0.0.1:{line.split()[1]}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/stats", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield f"{url}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def stats(base_url: str) -> dict:
    """The endpoint's request counts."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=5) as response:
        return json.loads(response.read())


if __name__ == "__main__":
    main()
