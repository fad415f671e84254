"""`selflengthen serve` keeps the exit-code table: port 0 serves on the port it prints, a port already
taken (by another `serve`) is exit 2 with one line, and SIGINT or SIGTERM stop it cleanly with exit 130."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def start_serve(model, *flags: str) -> tuple[subprocess.Popen, list[str]]:
    """A `serve` process and the lines it has printed so far (filled by a reader thread)."""
    process = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", str(model), "--torch-threads", "1",
                                *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()
    return process, lines


def wait_for(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_port_0_serves_on_the_printed_port_and_a_signal_exits_130_after_a_clean_shutdown(tiny_model_dir, stop):
    process, lines = start_serve(tiny_model_dir, "--port", "0")
    try:
        address = wait_for(lambda: next((m for line in lines if (m := re.search(r"at (http://\S+)/v1 ", line))), None),
                           120).group(1)
        port = int(address.rsplit(":", 1)[1])
        assert port != 0
        models = wait_for(lambda: _get(f"{address}/v1/models"), 300)
        assert str(tiny_model_dir) in models
        if stop == signal.SIGINT:  # a second server on the running one's port: refused before loading a model
            second = subprocess.run([sys.executable, "-m", "harness.cli", "serve", str(tiny_model_dir), "--port",
                                     str(port)], capture_output=True, text=True, env=ENV, timeout=300)
            assert second.returncode == 2, second.stderr
            errors = [line for line in second.stderr.splitlines() if line.strip()]
            assert len(errors) == 1 and errors[0].startswith("error: cannot listen on 127.0.0.1 port"), second.stderr
            assert "Address already in use" in errors[0]
        process.send_signal(stop)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = "".join(lines)
    assert "Application shutdown complete" in output and "interrupted" in output, output
    assert "Traceback" not in output
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{address}/health", timeout=2)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None
