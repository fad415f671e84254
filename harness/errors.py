"""Errors a user can fix: the CLI prints them as one line, without a traceback, and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unusable environment; the message says what to fix."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The exception's message, first line only (at most `limit` characters); its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def root_cause_line(exc: BaseException) -> str:
    """The innermost cause, as "Type: first line": what actually went wrong (e.g. a refused connection)."""
    while True:
        inner = getattr(exc, "last_attempt", None)  # tenacity's RetryError, as lm-eval raises it
        if inner is not None and inner.exception() is not None:
            exc = inner.exception()
            continue
        if exc.__cause__ is not None:
            exc = exc.__cause__
            continue
        return f"{type(exc).__name__}: {first_line(exc)}"


def describe_input_error(exc: BaseException) -> str | None:
    """A one-line sentence for a library exception that means unusable input, else None (a bug).

    An OSError that names its file (a directory where a file is due, a missing or unwritable
    path, a full disk) and a file that is not UTF-8 are the user's to fix, wherever they surface.
    """
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = (exc.strerror or type(exc).__name__).rstrip(".")
        return f"cannot use {exc.filename}: {reason}"
    if isinstance(exc, UnicodeDecodeError):
        return (f"an input file is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                f"{exc.start}); save it as UTF-8 (--debug shows which file)")
    return None
