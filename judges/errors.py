"""Errors raised by the judges package."""


class JudgeError(ValueError):
    """A judge cannot run as configured (unknown rubric, malformed rubric file, bad config)."""


class JudgeReplyError(ValueError):
    """A judge's reply cannot be turned into scores; the message is a one-line reason."""
