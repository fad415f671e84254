"""Find the JSON-like `{...}`/`[...]` spans in free text, in time linear in its length.

A judge reply may hold prose, several objects, an unclosed brace or thousands of nested brackets
(a red-team reply). Scanning from every opener to its match costs O(n²) on unclosed openers, and
loading deeply nested spans overflows the stack; so one bracket scan records the match of every
opener it passes (an opener met later is looked up, not scanned again), and spans nested deeper
than `MAX_DEPTH` are never loaded (their inner spans are tried instead).

Quotes are tracked only inside brackets, so an apostrophe in the prose around a reply opens nothing.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 32
"""Deepest nesting of a span that is loaded; a judge's scores need two or three levels."""

_OPENER = re.compile(r"[{\[]")


@dataclass
class SpanScan:
    """The loaded top-level spans of a text, whether a `{` was left open, and the scanning work done."""

    objects: list[Any] = field(default_factory=list)
    truncated: bool = False
    steps: int = 0
    """Characters examined by the bracket scans (bounded by a small multiple of the text's length)."""


def json_objects(text: str) -> SpanScan:
    """Every top-level span that loads as JSON or a Python literal, in order of appearance.

    A span that does not load (or nests too deep) is skipped one character at a time, so the
    objects nested inside it are still found.
    """
    scan = SpanScan()
    brackets = _Brackets(text, scan)
    start = 0
    while match := _OPENER.search(text, start):
        open_at = match.start()
        close_at, depth = brackets.match(open_at)
        loaded = None
        if close_at is not None and depth <= MAX_DEPTH:
            loaded = load_object(text[open_at : close_at + 1])
        if loaded is not None:
            scan.objects.append(loaded)
            start = close_at + 1
        else:
            scan.truncated = scan.truncated or (close_at is None and text[open_at] == "{")
            start = open_at + 1
    return scan


def load_object(span: str) -> Any:
    """The span as JSON, JSON without trailing commas, or a Python literal; None when none loads."""
    without_trailing_commas = re.sub(r",\s*([}\]])", r"\1", span)
    for candidate in (span, without_trailing_commas):
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            pass
    pythonic = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", without_trailing_commas)))
    try:
        return ast.literal_eval(pythonic)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


class _Brackets:
    """Memoised bracket matching: each scan records the close and nesting depth of every opener it meets."""

    def __init__(self, text: str, scan: SpanScan):
        self.text = text
        self.scan = scan
        self.close: dict[int, int | None] = {}
        self.depth: dict[int, int] = {}

    def match(self, open_at: int) -> tuple[int | None, int]:
        """The index closing the opener at `open_at` (None when unclosed) and the span's nesting depth."""
        if open_at not in self.close:
            self._scan_from(open_at)
        return self.close[open_at], self.depth.get(open_at, 0)

    def _scan_from(self, open_at: int) -> None:
        text, stack = self.text, []  # stack entries: [opener index, deepest nesting below it]
        quote, escaped, i = None, False, open_at
        while i < len(text):
            self.scan.steps += 1
            ch = text[i]
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch in "{[":
                if i in self.close and i != open_at:  # scanned before from an earlier opener: jump over it
                    known = self.close[i]
                    if known is None:
                        break
                    stack[-1][1] = max(stack[-1][1], self.depth[i])
                    i = known + 1
                    continue
                stack.append([i, 0])
            elif ch in "}]":
                opener, below = stack.pop()
                self.close[opener], self.depth[opener] = i, below + 1
                if not stack:
                    return
                stack[-1][1] = max(stack[-1][1], below + 1)
            i += 1
        for opener, _ in stack:
            self.close[opener] = None
