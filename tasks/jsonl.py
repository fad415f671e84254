"""Reading JSONL with errors that name the file and line, shared by benchmark and prediction loaders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def iter_jsonl(path: Path, error: type[ValueError]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; `error` for a malformed line, a non-object or non-UTF-8 bytes."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as problem:
                raise error(f"{path} line {number}: not UTF-8 text (byte {raw[problem.start:problem.start + 1]!r} "
                            f"at column {problem.start + 1})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as problem:
                raise error(f"{path} line {number}: malformed JSON ({problem.msg})") from None
            if not isinstance(record, dict):
                raise error(f"{path} line {number}: expected a JSON object")
            yield number, record
