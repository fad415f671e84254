"""One judgement: ask the judge model, parse its reply, retry a bounded number of times, cache success.

A judge is a model name and a client (any `TextBackend`), a rubric (prompt and scale) and the parser.
A sample that still fails after the retries is recorded with its error, never given a score.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from judges.cache import JudgementCache, cache_key
from judges.config import JudgeConfig
from judges.errors import JudgeReplyError
from judges.parser import parse_reply
from judges.rubric import Rubric
from infra.backend import TextBackend
from infra.sampling import SamplingConfig


@dataclass(frozen=True)
class Judgement:
    """The outcome for one sample: scores and quality, or an error (then scores and quality are None)."""

    doc_id: Any
    scores: dict[str, float] | None
    quality: float | None
    missing: tuple[str, ...] = ()
    error: str | None = None
    attempts: int = 0
    cached: bool = False

    def to_record(self) -> dict[str, Any]:
        """The sample entry of judgements.json (docs/run_directory.md)."""
        return {
            "doc_id": self.doc_id,
            "scores": self.scores,
            "quality": self.quality,
            "missing": list(self.missing),
            "error": self.error,
            "attempts": self.attempts,
            "cached": self.cached,
        }


class Judge:
    """Grades (instruction, response) pairs with `config.model` through `client`, bounded and cached."""

    def __init__(self, client: TextBackend, config: JudgeConfig, cache: JudgementCache, limit: asyncio.Semaphore):
        self.client = client
        self.config = config
        self.cache = cache
        self.limit = limit

    async def judge(
        self, rubric: Rubric, doc_id: Any, instruction: str, response: str, *, repeat: int = 0, temperature: float = 0.0
    ) -> Judgement:
        """Judge one sample; `repeat` and `temperature` make reliability repeats distinct, real calls."""
        response = clip_response(response, self.config.max_response_chars)
        key = cache_key(
            model=self.config.model,
            rubric=rubric.name,
            rubric_version=rubric.version,
            instruction=instruction,
            response=response,
            repeat=repeat,
            temperature=temperature,
        )
        cached_reply = self.cache.get(key)
        if cached_reply is not None:
            try:
                return _success(rubric, doc_id, cached_reply, attempts=0, cached=True)
            except JudgeReplyError:
                pass  # stored under a more lenient parser: judge again
        messages = rubric.messages(instruction, response)
        error = ""
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            first = attempt == 0
            sampling = SamplingConfig(
                temperature=temperature if first else max(temperature, self.config.retry_temperature),
                max_tokens=self.config.max_tokens,
            )
            try:
                async with self.limit:
                    completion = await self.client.chat(messages, sampling)
                judgement = _success(rubric, doc_id, completion.text, attempts=attempt + 1, cached=False)
            except JudgeReplyError as exc:
                cut = " (reply cut at max_tokens)" if completion.finish_reason == "length" else ""
                error = f"unusable reply: {exc}{cut}"
            except Exception as exc:  # noqa: BLE001 - any backend failure is recorded on the sample, not raised
                error = f"backend error: {type(exc).__name__}: {' '.join(str(exc).split())}"
            else:
                self.cache.put(key, completion.text)
                return judgement
        return Judgement(doc_id=doc_id, scores=None, quality=None, error=f"{error} [after {attempts} attempts]", attempts=attempts)


def clip_response(response: str, max_chars: int | None) -> str:
    """The response as the judge sees it: whole, or its first `max_chars` characters and a marker."""
    if max_chars is None or len(response) <= max_chars:
        return response
    return response[:max_chars] + f"\n[... response cut here for the judge: {len(response) - max_chars} more characters]"


def _success(rubric: Rubric, doc_id: Any, reply: str, *, attempts: int, cached: bool) -> Judgement:
    parsed = parse_reply(reply, rubric)
    return Judgement(
        doc_id=doc_id,
        scores=parsed.scores,
        quality=rubric.quality(parsed.scores),
        missing=parsed.missing,
        attempts=attempts,
        cached=cached,
    )
