"""No server outlives the harness that started it, even when the harness is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.serving.serve import watched

REPO = Path(__file__).resolve().parents[1]


def _alive_in_group(pgid: int) -> list[int]:
    """Pids of the processes of group `pgid` that are still running (zombies hold nothing)."""
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(pid))
    return alive


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _harness(script: str, *args: str) -> subprocess.Popen:
    """A real parent process running `script` with this checkout importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args],
                            stdout=subprocess.PIPE, text=True, env=env)


def _read_line(process: subprocess.Popen, seconds: float) -> str:
    """The parent's first line of output, or a failure if it gives none within `seconds`."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    assert line and line[0].strip(), "the parent process printed nothing"
    return line[0].strip()


def test_watchdog_passes_the_servers_exit_code_through():
    result = subprocess.run(watched([sys.executable, "-c", "raise SystemExit(3)"]), check=False, timeout=60)
    assert result.returncode == 3


def test_watchdog_ends_the_server_group_when_the_harness_is_killed():
    parent = _harness("""
        import subprocess, sys, time
        from harness.serving.serve import watched
        server = subprocess.Popen(watched(["sleep", "600"]), start_new_session=True)
        print(server.pid, flush=True)
        time.sleep(600)
    """)
    pgid = int(_read_line(parent, 60))
    assert _wait_until(lambda: len(_alive_in_group(pgid)) == 2, 30)  # the watchdog and `sleep`
    parent.kill()
    parent.wait()
    assert _wait_until(lambda: not _alive_in_group(pgid), 20), _alive_in_group(pgid)


@pytest.mark.slow
def test_kill_9_of_the_harness_leaves_no_transformers_server_and_frees_its_port(tiny_model_dir, tmp_path):
    parent = _harness("""
        import sys, time
        from harness.serving.serve import ServerConfig, serve
        with serve(sys.argv[1], ServerConfig(torch_threads=1), log_path=sys.argv[2]) as endpoint:
            print(endpoint.base_url, flush=True)
            time.sleep(600)
    """, str(tiny_model_dir), str(tmp_path / "server.log"))
    port = int(_read_line(parent, 300).rsplit(":", 1)[1].split("/")[0])
    pgid = os.getpgid(_listening_pid(port))
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _wait_until(lambda: not _alive_in_group(pgid), 30), f"still running: {_alive_in_group(pgid)}"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"


def _listening_pid(port: int) -> int:
    """The pid of the process listening on `port` on loopback (read from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":
                inodes.add(f"socket:[{parts[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no process listens on {port}")
