"""One judgement: ask the judge model, parse its reply, retry a bounded number of times, cache success.

A judge is a model name and a client (any `TextBackend`), a rubric (prompt and scale) and the parser.
What it asks beyond text depends on the backend's `features`: the rubric's JSON schema
(`structured`) and top log-probabilities, which turn argmax scores into G-Eval weighted ones.
Many endpoints that take OpenAI's fields honour neither: a reply that comes without the logprobs
asked for is scored from its parsed reply (`without_logprobs`, counted per task), and when a request
carrying the schema fails where the same request without it succeeds, the judge sends free text for
the rest of its pass (`schema_refused` says why). A sample that still fails after the retries is
recorded with its error, never given a score.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from judges.cache import JudgementCache, cache_key
from judges.config import JudgeConfig
from judges.errors import JudgeError, JudgeReplyError
from judges.parser import parse_reply
from judges.rubric import Rubric
from judges.weighting import weighted_scores
from infra.backend import Completion, MissingLogprobs, TextBackend, TokenLogprob
from infra.sampling import SamplingConfig

T = TypeVar("T")


@dataclass(frozen=True)
class RequestMode:
    """What every judge request asks of the backend besides text."""

    structured: bool
    top_logprobs: int | None

    def key(self) -> dict[str, Any]:
        """The cache-key part: empty for a plain request, so plain judges keep their cached replies."""
        return {k: v for k, v in (("json_schema", self.structured), ("top_logprobs", self.top_logprobs)) if v}


def request_mode(client: TextBackend, config: JudgeConfig) -> RequestMode:
    """Structured output and logprobs where the backend honours them; `structured: always` refuses otherwise."""
    features = getattr(client, "features", frozenset())
    if config.structured == "always" and "json_schema" not in features:
        raise JudgeError(
            f"JudgeConfig.structured is 'always' but the judge backend does not support json_schema "
            f"(it supports: {', '.join(sorted(features)) or 'nothing optional'})"
        )
    structured = config.structured != "never" and "json_schema" in features
    top = config.top_logprobs if config.top_logprobs and "top_logprobs" in features else None
    return RequestMode(structured=structured, top_logprobs=top)


@dataclass(frozen=True)
class Reply(Generic[T]):
    """A parsed reply, or the error that ended the attempts (then `value` is None)."""

    value: T | None
    error: str | None
    attempts: int
    cached: bool


@dataclass(frozen=True)
class Judgement:
    """The outcome for one sample: scores and quality, or an error (then scores and quality are None).

    `scores` are probability-weighted for the dimensions in `weighted_dimensions`, argmax for the
    others; `argmax_scores` are the generated values. `without_logprobs`: logprobs were asked for
    and the endpoint returned none, so every score is the parsed (argmax) one.
    """

    doc_id: Any
    scores: dict[str, float] | None
    quality: float | None
    argmax_scores: dict[str, float] | None = None
    weighted_dimensions: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    error: str | None = None
    attempts: int = 0
    cached: bool = False
    without_logprobs: bool = False

    def to_record(self) -> dict[str, Any]:
        """The sample entry of judgements.json (judges/README.md)."""
        return {
            "doc_id": self.doc_id,
            "scores": self.scores,
            "argmax_scores": self.argmax_scores,
            "weighted": bool(self.weighted_dimensions),
            "weighted_dimensions": list(self.weighted_dimensions),
            "without_logprobs": self.without_logprobs,
            "quality": self.quality,
            "missing": list(self.missing),
            "error": self.error,
            "attempts": self.attempts,
            "cached": self.cached,
        }


class Judge:
    """Grades (instruction, response) pairs with `config.model` through `client`, bounded and cached."""

    def __init__(
        self, client: TextBackend, config: JudgeConfig, cache: JudgementCache, limit: asyncio.Semaphore, mode: RequestMode
    ):
        self.client = client
        self.config = config
        self.cache = cache
        self.limit = limit
        self.mode = mode
        self.schema_refused: str | None = None
        """Why this judge sends no JSON schema any more (the endpoint refused it), or None."""
        self.schema_honoured = False  # a reply came to a request with the schema: failures are not about it

    async def judge(
        self, rubric: Rubric, doc_id: Any, instruction: str, response: str, *, repeat: int = 0, temperature: float = 0.0
    ) -> Judgement:
        """Judge one sample; `repeat` and `temperature` make reliability repeats distinct, real calls."""
        response = clip_response(response, self.config.max_response_chars)
        key = self.key(rubric.name, rubric.version, instruction, response, repeat=repeat, temperature=temperature)
        reply = await self.ask(
            key,
            rubric.messages(instruction, response),
            lambda text, tokens: _scored(rubric, doc_id, text, tokens, self.mode.top_logprobs is not None),
            temperature=temperature,
            schema=rubric.json_schema() if self.mode.structured else None,
        )
        if reply.value is None:
            return Judgement(doc_id=doc_id, scores=None, quality=None, error=reply.error, attempts=reply.attempts)
        return _with_attempts(reply.value, reply.attempts, reply.cached)

    def key(self, rubric: str, version: int, instruction: str, response: str, *, repeat: int, temperature: float) -> str:
        """The cache key of one request of this judge."""
        return cache_key(
            model=self.config.model,
            rubric=rubric,
            rubric_version=version,
            instruction=instruction,
            response=response,
            repeat=repeat,
            temperature=temperature,
            request=self.mode.key(),
        )

    async def ask(
        self,
        key: str,
        messages: list[dict[str, str]],
        parse: Callable[[str, list[TokenLogprob] | None], T],
        *,
        temperature: float,
        schema: dict | None,
    ) -> Reply[T]:
        """The cached reply, or up to 1 + max_retries calls until `parse` accepts one (JudgeReplyError rejects)."""
        stored = self.cache.get(key)
        if stored is not None:
            try:
                return Reply(parse(*stored), None, attempts=0, cached=True)
            except JudgeReplyError:
                pass  # stored under a more lenient parser: judge again
        error = ""
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            sampling = SamplingConfig(
                temperature=temperature if attempt == 0 else max(temperature, self.config.retry_temperature),
                max_tokens=self.config.max_tokens,
                json_schema=schema,
                top_logprobs=self.mode.top_logprobs,
            )
            completion = None
            try:
                completion = await self._send(messages, sampling)
                value = parse(completion.text, completion.logprobs)
            except JudgeReplyError as exc:
                cut = " (reply cut at max_tokens)" if completion.finish_reason == "length" else ""
                error = f"unusable reply: {exc}{cut}"
            except Exception as exc:  # noqa: BLE001 - any backend failure is recorded on the sample, not raised
                error = f"backend error: {type(exc).__name__}: {' '.join(str(exc).split())}"
            else:
                self.cache.put(key, completion.text, completion.logprobs)
                return Reply(value, None, attempts=attempt + 1, cached=False)
        return Reply(None, f"{error} [after {attempts} attempts]", attempts=attempts, cached=False)

    async def _send(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Completion:
        """One reply; without the schema once the endpoint refused it, and kept when its logprobs are missing."""
        if sampling.json_schema is not None and self.schema_refused is not None:
            sampling = dataclasses.replace(sampling, json_schema=None)
        try:
            completion = await self._reply(messages, sampling)
        except Exception as refused:  # noqa: BLE001 - is it the schema? the same request without it tells
            if sampling.json_schema is None or self.schema_honoured or self.config.structured == "always":
                raise
            completion = await self._reply(messages, dataclasses.replace(sampling, json_schema=None))
            if self.schema_refused is None:
                self.schema_refused = f"{type(refused).__name__}: {' '.join(str(refused).split())}"[:300]
            return completion
        self.schema_honoured = self.schema_honoured or sampling.json_schema is not None
        return completion

    async def _reply(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Completion:
        try:
            async with self.limit:
                return await self.client.chat(messages, sampling)
        except MissingLogprobs as missing:
            return missing.completion  # scored from its parsed reply and marked so (`_scored`)


def clip_response(response: str, max_chars: int | None) -> str:
    """The response as the judge sees it: whole, or its first `max_chars` characters and a marker."""
    if max_chars is None or len(response) <= max_chars:
        return response
    return response[:max_chars] + f"\n[... response cut here for the judge: {len(response) - max_chars} more characters]"


def _scored(rubric: Rubric, doc_id: Any, reply: str, tokens: list[TokenLogprob] | None,
            asked_logprobs: bool = False) -> Judgement:
    parsed = parse_reply(reply, rubric)
    weighted = weighted_scores(tokens, rubric, parsed.scores, parsed.missing)
    scores = {d: weighted.get(d, s) for d, s in parsed.scores.items()}
    return Judgement(
        doc_id=doc_id,
        scores=scores,
        quality=rubric.quality(scores),
        argmax_scores=parsed.scores,
        weighted_dimensions=tuple(d for d in rubric.dimensions if d in weighted),
        missing=parsed.missing,
        without_logprobs=asked_logprobs and tokens is None,
    )


def _with_attempts(judgement: Judgement, attempts: int, cached: bool) -> Judgement:
    return dataclasses.replace(judgement, attempts=attempts, cached=cached)
