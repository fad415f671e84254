"""An on-disk cache of judge replies, so a re-run or a resumed crash never pays for a judgement twice.

SQLite gives atomic, durable writes per reply; the key is a hash of everything that decides the reply.
Only successful replies are stored, as raw text, and re-parsed on reading (a parser fix applies to them).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path


def cache_key(
    *, model: str, rubric: str, rubric_version: int, instruction: str, response: str, repeat: int, temperature: float
) -> str:
    """SHA-256 of the judge model, rubric name and version, the graded pair, the repeat index and temperature."""
    parts = [model, rubric, rubric_version, instruction, response, repeat, temperature]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()


class JudgementCache:
    """Raw judge replies by cache key, in a SQLite file (or in memory when `path` is None)."""

    def __init__(self, path: str | Path | None = None):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if path is None else str(path))
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
        self._db.commit()

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, reply: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO replies (key, reply) VALUES (?, ?)", (key, reply))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> JudgementCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
