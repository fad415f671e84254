"""Errors a user can fix: the CLI prints them as one line, without a traceback."""


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
