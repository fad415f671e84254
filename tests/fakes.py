"""The one test double: a scripted `TextBackend` that injects faults and fixes a schedule.

A fake exists to inject what a real model will not produce on demand (errors, garbage, empty or
parseable replies, a request that waits for an event); tests of what the model path itself does
run the real engine (`infra.inprocess.InProcessBackend`) on the tiny random model instead.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from infra.backend import Completion, Unsupported
from infra.sampling import SamplingConfig

Reply = str | Completion | BaseException | None
"""A text (None: a reply without text), a whole Completion, or an exception the request raises."""

Script = Callable[[Any, SamplingConfig, int], Reply | Awaitable[Reply]]
"""`script(prompt, sampling, call_number)` -> the reply; `call_number` counts from 1 over all requests.
An async script (or one returning an awaitable) can hold its request until an event is set."""

OPTIONAL_FIELDS = ("json_schema", "top_logprobs")
"""SamplingConfig fields a backend honours only when it names them in `features`."""


@dataclass
class SentRequest:
    """One request the backend received."""

    kind: Literal["chat", "complete"]
    prompt: str | list[dict[str, str]]
    """The raw prompt of a completion, or the messages of a chat."""
    sampling: SamplingConfig

    @property
    def text(self) -> str:
        """The raw prompt, or a chat's last message (where the request's task is written)."""
        if isinstance(self.prompt, str):
            return self.prompt
        return self.prompt[-1]["content"] if self.prompt else ""


class ScriptedBackend:
    """A TextBackend whose every reply is `reply`, or what `script` returns for the request.

    `script_gets` chooses what the script is shown: "text" (a completion's prompt, a chat's last
    message) or "messages" (a chat's whole message list; a completion's prompt). `delay` seconds
    pass before each reply (the request still yields to the event loop at 0). Every request is
    recorded in `sent`; `most_in_flight` is the most requests it held at once. A request setting a
    SamplingConfig field outside `features` is refused with `Unsupported`, as the protocol says.
    """

    def __init__(
        self,
        reply: Reply = "",
        *,
        script: Script | None = None,
        script_gets: Literal["text", "messages"] = "text",
        delay: float = 0.0,
        features: Iterable[str] = (),
    ) -> None:
        self.reply = reply
        self.script = script
        self.script_gets = script_gets
        self.delay = delay
        self.features = frozenset(features)
        self.sent: list[SentRequest] = []
        self.in_flight = 0
        self.most_in_flight = 0

    @property
    def calls(self) -> int:
        """Requests received so far."""
        return len(self.sent)

    async def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Completion:
        return await self._serve(SentRequest("chat", messages, sampling))

    async def complete(self, prompt: str, sampling: SamplingConfig) -> Completion:
        return await self._serve(SentRequest("complete", prompt, sampling))

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    async def _serve(self, request: SentRequest) -> Completion:
        for name in OPTIONAL_FIELDS:
            if getattr(request.sampling, name) is not None and name not in self.features:
                raise Unsupported(f"{name}: this backend does not support it")
        self.sent.append(request)
        call_number = len(self.sent)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            reply = self.reply if self.script is None else self.script(self._shown(request), request.sampling, call_number)
            if inspect.isawaitable(reply):
                reply = await reply
            if isinstance(reply, BaseException):
                raise reply
            return reply if isinstance(reply, Completion) else Completion(text=reply, finish_reason="stop")
        finally:
            self.in_flight -= 1

    def _shown(self, request: SentRequest) -> str | list[dict[str, str]]:
        return request.prompt if self.script_gets == "messages" else request.text


async def held_until(event: asyncio.Event, reply: Reply, deadline_s: float = 10.0) -> Reply:
    """`reply` once `event` is set: a script returns this to hold a request until another one has
    happened. Past the deadline the request fails with TimeoutError instead of hanging the test."""
    await asyncio.wait_for(event.wait(), deadline_s)
    return reply


ReplyPlan = Reply | list[Reply] | Callable[[str], Reply]
"""A reply; a list of replies, one per request of the kind (the last one repeated); or a function of the prompt text."""


def kind_of(text: str, markers: Mapping[str, Sequence[str]]) -> str:
    """The first kind of prompt whose marker strings `text` holds one of."""
    for kind, kind_markers in markers.items():
        if any(marker in text for marker in kind_markers):
            return kind
    raise ValueError(f"no marker of any kind ({', '.join(markers)}) in the prompt {text[:80]!r}")


def replies_by_kind(markers: Mapping[str, Sequence[str]], replies: Mapping[str, ReplyPlan]) -> Script:
    """A script that tells prompts apart by `markers` and answers each kind as `replies[kind]` plans."""
    requests_of: Counter[str] = Counter()

    def script(text: str, sampling: SamplingConfig, call_number: int) -> Reply:
        kind = kind_of(text, markers)
        requests_of[kind] += 1
        if kind not in replies:
            raise KeyError(f"no reply scripted for {kind} prompts")
        plan = replies[kind]
        if isinstance(plan, list):
            plan = plan[min(requests_of[kind], len(plan)) - 1]
        return plan(text) if callable(plan) else plan

    return script
