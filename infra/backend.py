"""The one interface through which the method talks to a model.

The harness provides implementations (an OpenAI-compatible endpoint client; an in-process
batched model for CPU synthesis); the method and the judges only see this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from infra.sampling import SamplingConfig


@dataclass
class TokenLogprob:
    """One generated token, its log-probability, and the most likely alternatives at its position."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass
class Completion:
    """One generated text and what the backend knows about it (`logprobs` when asked for)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    logprobs: list[TokenLogprob] | None = None
    draft_tokens: int = 0
    """Speculative draft tokens the engine verified for this answer (0 where it drafts none)."""
    accepted_draft_tokens: int = 0
    """Of those, the ones the model kept: accepted_draft_tokens / draft_tokens is the acceptance rate."""


class Unsupported(ValueError):
    """A request field this backend cannot honour; the message names the field."""


class MissingLogprobs(Unsupported):
    """Top logprobs were asked for and the endpoint answered without them; `completion` is that answer.

    Refused like any field a backend cannot honour, so nobody loses them unknowingly; a caller that can
    do without (the judge: the reply's parsed score) takes `completion` and says so.
    """

    def __init__(self, message: str, completion: Completion):
        super().__init__(message)
        self.completion = completion


def truncate_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop string; says whether one was found."""
    cuts = [index for index in (text.find(s) for s in stop if s) if index >= 0]
    if not cuts:
        return text, False
    return text[: min(cuts)], True


class TextBackend(Protocol):
    """Chat and raw completion; both are needed (the Extender continues a raw prompt).

    `features` names the optional SamplingConfig fields the backend honours ("json_schema",
    "top_logprobs"); a request that sets another one is refused with `Unsupported`.
    """

    features: frozenset[str]

    async def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Completion: ...

    async def complete(self, prompt: str, sampling: SamplingConfig) -> Completion: ...

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        """The prompt text a chat request would produce, ready for raw continuation."""
        ...
