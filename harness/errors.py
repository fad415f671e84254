"""Errors a user can fix: the CLI prints them as one line, without a traceback, and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unusable environment; the message says what to fix."""


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
