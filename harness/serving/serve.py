"""Start, health-check and always stop a local OpenAI-compatible server.

`with serve(model, ServerConfig(kind="transformers"), log_path=...) as endpoint:` gives an
`Endpoint`; the caller never sees a process id. The server is a child process in its own
process group, bound to 127.0.0.1 on a free port, its log streamed to a file, and stopped on
exit, on errors and on Ctrl-C. The group is led by `server_watchdog.py`, which stops the server
when this process dies without doing so itself (kill -9), so no orphan outlives a run. Before a
server starts, CUDA memory this process cached (in-process training) is handed back, so the server
finds the GPU free.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.errors import UserError

ServerKind = Literal["transformers", "vllm", "inprocess"]
VllmDtype = Literal["bfloat16", "float16", "float32", "auto"]
VLLM_DTYPES = ("bfloat16", "float16", "float32", "auto")


@dataclass
class ServerConfig:
    """How to serve a model locally.

    Fields:
        kind: `transformers` (`transformers serve`, CPU default), `vllm` (`vllm serve`, GPU) or
            `inprocess` (`python -m infra.openai_server`: our continuous-batching engine, with
            per-request sampling, JSON-schema output and top logprobs; local checkpoint folders only).
        continuous_batching: pass `--continuous-batching` to transformers serve; without it the
            server answers one request at a time.
        torch_threads: intra-op threads of the server process (OMP_NUM_THREADS); None leaves
            torch's default. On 2 cores, two processes with 2 threads each run 5-10x slower.
        cb_num_blocks, cb_max_batch_tokens: transformers' continuous-batching cache. Left to
            itself on a CPU it reserves ~60% of RAM (14 GB here) and ran 22 tok/s instead of 81;
            64 blocks of 256 tokens hold 16 requests of ~1,000 tokens. None lets transformers decide.
        max_batch_size: inprocess only: most requests decoded together.
        startup_timeout: seconds to wait for the health check.
        lora_adapters: vLLM only: adapter name -> folder, served by name with `--enable-lora`.
        dtype: vLLM only: `vllm serve --dtype`, the precision every checkpoint is served in, so the base
            and the trained arms are compared in one precision. bfloat16 (the default; Qwen2.5's own
            dtype, and what merged checkpoints keep) needs a GPU of compute capability 8.0 or more
            (A100, H100, L4, RTX 30xx+); on older GPUs (V100, T4) set float16. `auto` is vLLM's own
            choice per checkpoint (its config's dtype, float16 for a float32 one), which can differ
            between checkpoints; it is not the default for that reason.
        data_parallel_size: vLLM only: `vllm serve --data-parallel-size N`, N engine replicas behind the one
            endpoint, one per GPU (with tensor parallelism in extra_args, N x TP GPUs): a node's GPUs share the
            requests, with no second server or client.
        extra_args: further command-line arguments for the server (for vLLM not `--dtype` or
            `--data-parallel-size`: use `dtype` and `data_parallel_size`).
    """

    kind: ServerKind = field(default="transformers", metadata={"help": "transformers (CPU), vllm (GPU) or inprocess."})
    continuous_batching: bool = field(default=True, metadata={"help": "transformers serve --continuous-batching."})
    torch_threads: int | None = field(default=None, metadata={"help": "OMP_NUM_THREADS for the server process."})
    cb_num_blocks: int | None = field(default=64, metadata={"help": "transformers CB: KV-cache blocks (256 tokens each)."})
    cb_max_batch_tokens: int | None = field(default=1024, metadata={"help": "transformers CB: tokens per forward step."})
    max_batch_size: int = field(default=16, metadata={"help": "inprocess: most requests decoded together."})
    startup_timeout: float = field(default=600.0, metadata={"help": "Seconds to wait for /health."})
    lora_adapters: dict[str, str] = field(default_factory=dict, metadata={"help": "vLLM: adapter name -> path."})
    dtype: VllmDtype = field(default="bfloat16", metadata={
        "help": "vLLM: --dtype for every checkpoint (bfloat16 needs compute capability >= 8.0; else float16)."})
    data_parallel_size: int = field(default=1, metadata={
        "help": "vLLM: --data-parallel-size, engine replicas behind the one endpoint (one per GPU)."})
    extra_args: list[str] = field(default_factory=list, metadata={"help": "Extra server arguments."})

    def __post_init__(self):
        if self.dtype not in VLLM_DTYPES:
            raise UserError(f"server dtype must be one of {', '.join(VLLM_DTYPES)}, got {self.dtype!r}")
        if self.kind == "vllm" and any(arg == "--dtype" or str(arg).startswith("--dtype=") for arg in self.extra_args):
            raise UserError("server extra_args sets --dtype; set the server's dtype field instead "
                            "(the plan shows it and every checkpoint is served with it)")
        if isinstance(self.data_parallel_size, bool) or not isinstance(self.data_parallel_size, int) \
                or self.data_parallel_size < 1:
            raise UserError(f"server data_parallel_size must be a whole number of at least 1, "
                            f"got {self.data_parallel_size!r}")
        if self.kind == "vllm" and any(_sets_data_parallel_size(str(arg)) for arg in self.extra_args):
            raise UserError("server extra_args sets --data-parallel-size; set the server's data_parallel_size field "
                            "instead (the plan shows it)")
        if isinstance(self.max_batch_size, bool) or self.max_batch_size < 1:
            raise UserError(f"server max_batch_size must be at least 1, got {self.max_batch_size!r}")
        if not 0 < self.startup_timeout < float("inf"):
            raise UserError(f"server startup_timeout must be a number of seconds above 0, got {self.startup_timeout!r}")


def _sets_data_parallel_size(arg: str) -> bool:
    """Whether a vLLM argument sets the data-parallel size: `--data-parallel-size` (vLLM reads `_` as `-` in
    long options) or `-dp`, alone or with its value after `=` or, for `-dp`, joined (`-dp2`)."""
    name = arg.split("=", 1)[0]
    return name.replace("_", "-") == "--data-parallel-size" or name == "-dp" or (
        arg.startswith("-dp") and arg[3:].isdigit())


@dataclass
class Endpoint:
    """An OpenAI-compatible endpoint: where it is, which model name to send, what serves it.

    `kind` decides how sampling parameters travel (see `harness.serving.client.sampling_request`);
    `tokenizer` is a local path or Hub id whose chat template builds raw-completion prompts.
    The API key is read from the environment variable named `api_key_env`, never stored.
    """

    base_url: str
    model: str
    kind: Literal["transformers", "vllm", "inprocess", "openai"] = "openai"
    tokenizer: str | None = None
    api_key_env: str | None = None

    @property
    def api_key(self) -> str:
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise UserError(f"environment variable {self.api_key_env} (the endpoint's API key) is not set")
            return value
        return "EMPTY"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(model: str, config: ServerConfig, port: int) -> list[str]:
    """The command line that starts the server."""
    if config.kind == "transformers":
        exe = _console_script("transformers")
        cmd = [exe, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
        if config.continuous_batching:
            cmd.append("--continuous-batching")
            if config.cb_num_blocks:
                cmd += ["--cb-num-blocks", str(config.cb_num_blocks)]
            if config.cb_max_batch_tokens:
                cmd += ["--cb-max-batch-tokens", str(config.cb_max_batch_tokens)]
    elif config.kind == "vllm":
        exe = _console_script("vllm")
        cmd = [exe, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", model]
        cmd += ["--dtype", config.dtype]
        if config.data_parallel_size > 1:
            cmd += ["--data-parallel-size", str(config.data_parallel_size)]
        if config.lora_adapters:
            cmd.append("--enable-lora")
            cmd += ["--lora-modules", *(f"{name}={path}" for name, path in config.lora_adapters.items())]
    elif config.kind == "inprocess":
        cmd = [sys.executable, "-m", "infra.openai_server", "--model", model, "--host", "127.0.0.1",
               "--port", str(port), "--served-model-name", model, "--max-batch", str(config.max_batch_size)]
        if config.torch_threads:
            cmd += ["--torch-threads", str(config.torch_threads)]
    else:
        raise UserError(f"unknown server kind {config.kind!r}; use transformers, vllm or inprocess")
    return cmd + list(config.extra_args)


def server_label(config: ServerConfig) -> str:
    """How the plan names a started server: `vllm serve --dtype bfloat16 --data-parallel-size 8`, ..."""
    if config.kind != "vllm":
        return f"{config.kind} serve"
    replicas = f" --data-parallel-size {config.data_parallel_size}" if config.data_parallel_size > 1 else ""
    return f"vllm serve --dtype {config.dtype}{replicas}"


def release_cuda_cache() -> None:
    """Hand CUDA memory this process cached back to the driver, so a server started next can use it.

    After in-process training the caching allocator keeps the freed blocks (GBs for a 7B model), which
    another process, such as vLLM sizing its KV cache from free memory, cannot use. A process that never
    touched CUDA (or never imported torch) has nothing to release, and torch is not imported for it.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return
    gc.collect()  # the trainer's reference cycles still hold tensors until collected
    torch.cuda.empty_cache()


def _console_script(name: str) -> str:
    """Prefer the script next to this interpreter, so a venv's server matches its packages."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        extra = " (pip install 'selflengthen[gpu]')" if name == "vllm" else ""
        raise UserError(f"cannot find the `{name}` command{extra}")
    return found


@contextlib.contextmanager
def serve(model: str, config: ServerConfig | None = None, log_path: str | Path | None = None) -> Iterator[Endpoint]:
    """Run a server for `model` for the duration of the block and yield its endpoint."""
    config = config or ServerConfig()
    port = free_port()
    cmd = server_command(model, config, port)
    release_cuda_cache()
    env = dict(os.environ)
    if config.torch_threads:
        env["OMP_NUM_THREADS"] = str(config.torch_threads)
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if config.kind == "inprocess":  # the child imports the same `infra` as this process, from any folder
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    log_path = Path(log_path) if log_path else Path(os.devnull)
    if log_path != Path(os.devnull):
        log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            watched(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
    endpoint = Endpoint(base_url=f"http://127.0.0.1:{port}/v1", model=model, kind=config.kind, tokenizer=model)
    try:
        wait_until_healthy(process, f"http://127.0.0.1:{port}/health", config.startup_timeout, log_path)
        yield endpoint
    finally:
        stop_process(process)


def watched(cmd: list[str]) -> list[str]:
    """`cmd` run under the watchdog that ends its process group when this process is gone."""
    watchdog = Path(__file__).with_name("server_watchdog.py")
    return [sys.executable, "-I", str(watchdog), str(os.getpid()), "--", *cmd]


def wait_until_healthy(process: subprocess.Popen, url: str, timeout: float, log_path: Path) -> None:
    """Poll the health URL until it answers 200; fail fast if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"the server exited with code {process.returncode} before it was ready; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise UserError(f"the server was not healthy after {timeout:.0f}s; see {log_path}")


def check_reachable(endpoint: Endpoint, timeout: float = 10.0) -> None:
    """Fail early, naming the address, when nothing answers at an endpoint's /models."""
    request = urllib.request.Request(
        f"{endpoint.base_url}/models", headers={"Authorization": f"Bearer {endpoint.api_key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # something answers; a stricter server may refuse this path
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot reach the endpoint at {endpoint.base_url}: {reason}") from None


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left after `grace` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
