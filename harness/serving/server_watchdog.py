"""Run a server command, and take its process group down when the harness that started it dies.

`python server_watchdog.py HARNESS_PID -- CMD...` is what `harness.serving.serve` starts, in a session of
its own, so it leads the server's process group. It runs CMD as its child, exits with CMD's exit
code, and every POLL_S checks that HARNESS_PID is still its parent. When the harness is gone
(`kill -9` included) it SIGTERMs the group and SIGKILLs what is left after GRACE_S, so no server
keeps its memory and port. A parent-death signal (prctl PR_SET_PDEATHSIG) would fire sooner, but
it fires when the *thread* that forked exits (not the process) and reaches only the direct
child, not the workers a server forks; watching the parent from the group's leader has neither flaw.

Standard library only: it is run by path with `python -I`, whatever the harness's import path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

POLL_S = 0.5
GRACE_S = 10.0


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: server_watchdog.py HARNESS_PID -- CMD...", file=sys.stderr)
        return 2
    harness_pid, command = int(argv[0]), argv[2:]
    told_to_stop = []
    for signum in (signal.SIGTERM, signal.SIGINT):  # the harness signals the whole group: the server stops itself
        signal.signal(signum, lambda *_: told_to_stop.append(True))
    server = subprocess.Popen(command)
    while True:
        try:
            return _exit_code(server.wait(timeout=POLL_S))
        except subprocess.TimeoutExpired:
            pass
        if told_to_stop:
            break
        if os.getppid() != harness_pid:  # reparented: the harness died without stopping us
            os.killpg(0, signal.SIGTERM)
            break
    try:
        return _exit_code(server.wait(timeout=GRACE_S))
    except subprocess.TimeoutExpired:
        os.killpg(0, signal.SIGKILL)  # this process included
        return 137


def _exit_code(returncode: int) -> int:
    """The server's exit code as a shell reports it (128 + N when signal N ended it)."""
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
