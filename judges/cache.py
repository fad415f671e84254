"""An on-disk cache of judge replies, so a re-run or a resumed crash never pays for a judgement twice.

SQLite gives atomic, durable writes per reply; the key is a hash of everything that decides the reply.
Only successful replies are stored, as raw text (and their token log-probabilities when asked for),
and re-parsed on reading (a parser fix applies to them).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from infra.backend import TokenLogprob


def cache_key(
    *,
    model: str,
    rubric: str,
    rubric_version: int,
    instruction: str,
    response: str,
    repeat: int,
    temperature: float,
    request: dict | None = None,
) -> str:
    """SHA-256 of the judge model, rubric name and version, the graded pair, the repeat index and temperature.

    `request` (structured output, logprobs) joins the key only when set, so a plain judge keeps its old keys.
    """
    parts = [model, rubric, rubric_version, instruction, response, repeat, temperature]
    if request:
        parts.append(request)
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()


class JudgementCache:
    """Raw judge replies by cache key, in a SQLite file (or in memory when `path` is None)."""

    def __init__(self, path: str | Path | None = None):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if path is None else str(path))
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(replies)")}
        if "logprobs" not in columns:  # a cache written before replies carried log-probabilities
            self._db.execute("ALTER TABLE replies ADD COLUMN logprobs TEXT")
        self._db.commit()

    def get(self, key: str) -> tuple[str, list[TokenLogprob] | None] | None:
        """The stored reply and its token log-probabilities (None when not asked for), or None."""
        row = self._db.execute("SELECT reply, logprobs FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        tokens = None if row[1] is None else [TokenLogprob(t, lp, top) for t, lp, top in json.loads(row[1])]
        return row[0], tokens

    def put(self, key: str, reply: str, logprobs: list[TokenLogprob] | None = None) -> None:
        stored = None if logprobs is None else json.dumps([[t.token, t.logprob, t.top] for t in logprobs])
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO replies (key, reply, logprobs) VALUES (?, ?, ?)", (key, reply, stored)
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> JudgementCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
