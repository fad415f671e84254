"""Reading JSONL with errors that name the file and line, shared by benchmark and prediction loaders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def iter_jsonl(path: Path, error: type[ValueError]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; `error` for a malformed line or a non-object."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as problem:
                raise error(f"{path} line {number}: malformed JSON ({problem.msg})") from None
            if not isinstance(record, dict):
                raise error(f"{path} line {number}: expected a JSON object")
            yield number, record
