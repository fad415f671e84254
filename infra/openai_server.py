"""Serve one InProcessBackend over OpenAI's HTTP API, on loopback only.

Why a server of our own: `transformers serve --continuous-batching` shares the first request's
sampling with every later one and has no structured output or logprobs, and vLLM needs a GPU.
This puts the in-process engine (per-request sampling, stop strings, seeds, JSON schemas, top
logprobs) behind `GET /health`, `GET /v1/models`, `POST /v1/chat/completions` and
`POST /v1/completions`, so lm-eval and the judges can reach it like any other endpoint.
Request and response shapes live in `infra.openai_wire`.

    python -m infra.openai_server --model PATH --port 8000 [--max-batch 16] [--torch-threads 1]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from infra.inprocess import InProcessBackend, InProcessConfig
from infra.openai_wire import RequestError, chat_request, chat_response, completion_request, completion_response

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def build_app(backend: InProcessBackend, model_name: str) -> FastAPI:
    """The HTTP routes over `backend`, which answers to the model name `model_name`."""
    app = FastAPI(title="selflengthen in-process server", docs_url=None, redoc_url=None)

    @app.exception_handler(RequestError)
    async def refused(_request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.get("/health")
    async def health() -> JSONResponse:
        alive = backend.is_serving()
        return JSONResponse({"status": "ok" if alive else "stopped"}, status_code=200 if alive else 503)

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "selflengthen"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        messages, sampling = chat_request(await _body(request, model_name), backend.sampling_defaults)
        completion = await _generate(backend.chat(messages, sampling))
        return chat_response(completion, model_name)

    @app.post("/v1/completions")
    async def completions(request: Request) -> dict:
        prompt, sampling = completion_request(await _body(request, model_name), backend.sampling_defaults)
        completion = await _generate(backend.complete(prompt, sampling))
        return completion_response(completion, model_name)

    return app


async def _body(request: Request, model_name: str) -> dict:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError(None, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(None, "the request body must be a JSON object")
    if body.get("model") not in (None, model_name):
        raise RequestError("model", f"model {body['model']!r} is not served here (this server has {model_name!r})", 404)
    return body


async def _generate(call):
    """Await the backend; what it refuses (an unusable schema, an Unsupported field) is a 400."""
    try:
        return await call
    except ValueError as error:  # Unsupported is one
        named = [field for field in ("json_schema", "top_logprobs") if field in str(error)]
        raise RequestError(named[0] if named else None, str(error)) from None


def bind_loopback(host: str, port: int) -> socket.socket:
    """A listening socket on `host`:`port` (port 0: one the system picks; `getsockname()` says which).

    Bound before the model loads, so a busy port is refused at once (OSError), not minutes later.
    """
    if host not in LOOPBACK:
        raise ValueError(f"host must be a loopback address ({', '.join(LOOPBACK)}), got {host!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 1 to 65535 (0: a free one), got {port}")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT, never a listening one
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, remembering the signal that made it shut down."""

    stopped_by: int | None = None

    def handle_exit(self, sig, frame) -> None:
        if self.stopped_by is None:
            self.stopped_by = sig
        super().handle_exit(sig, frame)


def run_server(config: InProcessConfig, sock: socket.socket, model_name: str | None = None) -> int | None:
    """Load the model, serve on `sock` until SIGINT/SIGTERM, stop the decode worker; the signal, or None.

    uvicorn shuts down gracefully on the signal and then raises it again with the handlers it found;
    ignoring it there leaves the caller to say how the process ends (`selflengthen serve`: exit 130).
    """
    with InProcessBackend(config) as backend:
        print(f"engine: {backend.describe_lanes()}", file=sys.stderr, flush=True)
        app = build_app(backend, model_name or str(config.model))
        server = _Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))
        handled = (signal.SIGINT, signal.SIGTERM)
        before = {sig: signal.signal(sig, lambda *_: None) for sig in handled}
        try:
            server.run(sockets=[sock])
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)
        stats = backend.stats
        if stats.drafted:  # said before the engine closes: a caller that stops waiting kills the process then
            print(f"speculative decoding: {stats.accepted} of {stats.drafted} drafted tokens accepted "
                  f"({stats.accepted / stats.drafted:.1%})", file=sys.stderr, flush=True)
    return server.stopped_by


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.openai_server", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="local checkpoint folder")
    parser.add_argument("--port", required=True, type=int, help="TCP port to listen on")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--served-model-name", help="the name requests use (default: the --model argument)")
    parser.add_argument("--adapter", type=Path, help="LoRA adapter folder merged into the model at load")
    parser.add_argument("--max-batch", type=int, default=16, help="most requests decoded together")
    parser.add_argument("--torch-threads", type=int, help="CPU threads for torch (default: the idle cores)")
    parser.add_argument("--lanes", type=int, help="decode loops side by side (default: one per torch thread on a CPU)")
    parser.add_argument("--precision", default="auto", help="fp32, bf16 or auto")
    parser.add_argument("--speculative-tokens", type=int, default=InProcessConfig.speculative_tokens,
                        help="tokens drafted per row and step by n-gram lookup (0: no speculative decoding)")
    args = parser.parse_args(argv)
    try:
        config = InProcessConfig(args.model, adapter=args.adapter, max_batch_size=args.max_batch,
                                 torch_threads=args.torch_threads, lanes=args.lanes, precision=args.precision,
                                 speculative_tokens=args.speculative_tokens)
        with bind_loopback(args.host, args.port) as sock:
            run_server(config, sock, args.served_model_name or str(args.model))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
