"""The one error the leaderboard raises for input a user can fix, and how its commands report any error."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path


class LeaderboardError(ValueError):
    """A run directory or leaderboard file is missing, malformed or inconsistent; the message says which."""


def run_command(command: Callable[[], int], debug: bool) -> int:
    """``command()``'s exit code; any error is one line on stderr and exit 2 (never 1, which means a regression).

    ``debug`` (``--debug`` or SELFLENGTHEN_DEBUG=1) prints the traceback first.
    """
    try:
        return command()
    except Exception as error:  # noqa: BLE001 - a LeaderboardError, an OSError or a bug: one line, exit 2
        if debug or os.environ.get("SELFLENGTHEN_DEBUG") == "1":
            traceback.print_exc()
        if isinstance(error, LeaderboardError):
            message = str(error)
        else:
            message = f"{type(error).__name__}: {error} (--debug shows the traceback)"
        print("error: " + " ".join(message.split()), file=sys.stderr)
        return 2


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one `error:` line and exit 2 (no usage block), as for any other bad input."""

    def error(self, message: str):
        print(f"error: {' '.join(message.split())} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def path_argument(value: str) -> Path:
    """A file or folder argument; an empty one (`--out ''`) is a typo, not the current folder."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must name a file or folder, got an empty string")
    return Path(value)
