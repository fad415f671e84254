"""The project's JSON and JSONL files: an append-only journal of finished items, atomic whole-file writes,
and the one JSONL reader, whose errors name the file and line.

A journal line is one JSON record with a unique `key`, flushed and fsynced before the next
request goes out, so `kill -9` loses at most the line being written. On reopen a torn last
line is cut off (not crashed on) and the finished keys are loaded, so a rerun skips them; a bad line
elsewhere (a hand edit, a disk error) is skipped with a warning naming it, never the records after it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)
_UNREADABLE = object()


class Journal:
    """Append-only JSONL of finished records, keyed by `record["key"]`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        self._load()
        self._file = self.path.open("a", encoding="utf-8")

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def append(self, record: dict[str, Any]) -> None:
        """Write one finished record durably; a key already written is a bug, not a retry."""
        key = record["key"]
        if key in self.records:
            raise ValueError(f"{self.path.name}: record {key!r} is already finished")
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records[key] = record

    def close(self) -> None:
        self._file.close()

    def _load(self) -> None:
        """Load every finished record. A torn or unparsable last line (a write cut short) is cut off; any other
        line that is no record is skipped and named, so one bad line never costs the records after it."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = data.splitlines(keepends=True)
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line) if line.endswith(b"\n") else _UNREADABLE
            except ValueError:  # not JSON, or not UTF-8
                record = _UNREADABLE
            if record is _UNREADABLE and number == len(lines):
                with self.path.open("r+b") as handle:
                    handle.truncate(len(data) - len(line))
            elif not (isinstance(record, dict) and isinstance(record.get("key"), str)):
                log.warning("%s line %d: skipped, not a JSON object with a string 'key' (%s); the other records "
                            "are kept", self.path, number, line[:60].decode("utf-8", "replace").strip())
            else:
                self.records[record["key"]] = record


def write_jsonl_atomically(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write all rows to `path` through a temporary file; returns how many were written."""
    count = 0
    with _atomic(path) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_json_atomically(path: Path, payload: Any) -> None:
    with _atomic(path) as out:
        json.dump(payload, out, indent=2, ensure_ascii=False)
        out.write("\n")


def write_text_atomically(path: Path, text: str) -> None:
    with _atomic(path) as out:
        out.write(text)


def load_json(path: Path, error: type[ValueError] = ValueError) -> Any:
    """The JSON value in a file; bytes that are not UTF-8 or malformed JSON raise `error` (the caller's own)
    naming the file, and the line for malformed JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as problem:
        raise error(f"{path} line {problem.lineno}: malformed JSON ({problem.msg})") from None


def read_json(path: Path, error: type[ValueError] = ValueError) -> dict[str, Any]:
    """The JSON object in a file, as `load_json` reads it; another JSON value raises `error` too."""
    value = load_json(path, error)
    if not isinstance(value, dict):
        raise error(f"{path} is not a JSON object")
    return value


def json_object(path: Path, *keys: str) -> dict:
    """The object under `keys` in the JSON file `path`, or {} where there is none: the file or a key is
    missing, or something on the way is not an object (a first run, a file a user deleted or broke)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def read_jsonl(path: Path, error: type[ValueError] = ValueError) -> list[dict[str, Any]]:
    """Every object of a JSONL file, in order; `error` for a bad line, as `iter_jsonl` says."""
    return [record for _, record in iter_jsonl(path, error)]


def iter_jsonl(path: Path, error: type[ValueError] = ValueError) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line. A malformed line, a non-object or non-UTF-8 bytes raise
    `error` (the caller's own, so its command reports it in one line) naming the file and line."""
    with Path(path).open("rb") as handle:
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


@contextmanager
def _atomic(path: Path) -> Iterator[TextIO]:
    """A text file that appears at `path` only once fully written and synced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _create_temporary(path)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new hidden file beside `path`, created 0666 less the umask like any file (mkstemp's 0600 would hide
    results from a teammate or a CI uploader running as another user)."""
    while True:
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(temporary)
        except FileExistsError:
            continue
