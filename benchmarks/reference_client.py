"""The reference Self-Lengthen client, rebuilt for a side-by-side benchmark (bench_synthesis.py).

A pool of worker threads sends blocking requests, each step waits at a barrier for all of its
slots, and a rejected slot retries recursively, as the reference code does; the prompts, filters
and per-item random choices are the project's, so both clients do the same work.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harness.serving.client import sampling_request, served_generation_defaults
from harness.serving.serve import Endpoint
from infra.backend import Completion, truncate_at_stop
from infra.rng import item_rng
from selflengthen.config import SelfLengthenConfig
from selflengthen.extender import extend_request
from selflengthen.filters import passes_filters
from selflengthen.prompts import render_prompt
from selflengthen.self_instruct import first_paragraph, is_yes
from selflengthen.text import count_words, first_half, join_paragraphs, leading_fraction, split_paragraphs


@dataclass
class ClientRun:
    """What one client did: wall time, requests and generated tokens, slots per step."""

    name: str
    seconds: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    instruction_slots: int
    instructions: int
    answer_slots: int
    answers: int
    extension_slots: int
    extensions: int
    rejections: dict[str, int]

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


class TokenTally:
    """Requests, prompt and completion tokens, summed safely from many threads."""

    def __init__(self) -> None:
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._lock = threading.Lock()

    def add(self, completion: Completion) -> None:
        with self._lock:
            self.requests += 1
            self.prompt_tokens += completion.prompt_tokens or 0
            self.completion_tokens += completion.completion_tokens or 0


class ReferenceClient:
    """The reference's synthesis loop: blocking requests from a thread pool, a barrier per step,
    recursive retries. Prompts, filters and per-item random choices are the project's."""

    def __init__(self, endpoint: Endpoint, config: SelfLengthenConfig, lang: str) -> None:
        import openai
        from transformers import AutoTokenizer

        self.openai = openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key, timeout=3600, max_retries=3)
        self.endpoint, self.config, self.lang = endpoint, config, lang
        self.model_defaults = served_generation_defaults(endpoint.tokenizer)
        self.tokenizer = AutoTokenizer.from_pretrained(endpoint.tokenizer)
        self.tally = TokenTally()
        self.rejections: Counter[str] = Counter()
        self._lock = threading.Lock()

    # -- one blocking request ---------------------------------------------------------------

    def request(self, sampling, messages: list[dict[str, str]] | None = None, prompt: str | None = None) -> str | None:
        """One chat (messages) or raw completion (prompt); None when the request failed."""
        fields = sampling_request(sampling, self.endpoint.kind, self.model_defaults)
        try:
            if messages is not None:
                reply = self.openai.chat.completions.create(model=self.endpoint.model, messages=messages, **fields)
                text = reply.choices[0].message.content
            else:
                reply = self.openai.completions.create(model=self.endpoint.model, prompt=prompt, **fields)
                text = reply.choices[0].text
        except Exception:  # the reference retries a failed request like a rejected one
            self.reject("request_error")
            return None
        text, _ = truncate_at_stop(text or "", sampling.stop)
        self.tally.add(Completion(text, prompt_tokens=reply.usage.prompt_tokens if reply.usage else None,
                                  completion_tokens=reply.usage.completion_tokens if reply.usage else None))
        return text

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejections[reason] += 1

    # -- the three steps, each retrying by calling itself -----------------------------------

    def write_instruction(self, pool: list[str], key: str, attempt: int = 0) -> str | None:
        settings = self.config.self_instruct
        if attempt >= settings.max_attempts:
            return None
        first, second = item_rng(self.config.seed, f"{key}/{attempt}").sample(pool, 2)
        stop = [*self.config.sampling.stop, *settings.stop_markers.get(self.lang, [])]
        write = dataclasses.replace(self.config.sampling, stop=stop)
        raw = self.request(write, prompt=render_prompt("self_instruct", self.lang, first=first, second=second))
        candidate = first_paragraph(raw or "")
        if not settings.min_words <= count_words(candidate) <= settings.max_words:
            rejected = "self_instruct.length"
        elif candidate in pool:
            rejected = "self_instruct.duplicate"
        else:
            judge = dataclasses.replace(self.config.sampling, max_tokens=settings.judge_max_tokens)
            question = render_prompt("judge_instruction", self.lang, instruction=candidate)
            reply = self.request(judge, messages=[{"role": "user", "content": question}]) or ""
            rejected = None if is_yes(reply, settings.yes_answers.get(self.lang, [])) else "self_instruct.unsuitable"
        if rejected:
            self.reject(rejected)
            return self.write_instruction(pool, key, attempt + 1)
        pool.append(candidate)
        return candidate

    def answer(self, instruction: str, attempt: int = 0) -> str | None:
        if attempt >= self.config.generator.max_attempts:
            return None
        reply = self.request(self.config.sampling, messages=[{"role": "user", "content": instruction}])
        ok, reason = passes_filters(reply or "", self.lang, self.config.filters)
        if ok:
            return reply.strip()
        self.reject(f"generate.{reason}")
        return self.answer(instruction, attempt + 1)

    def extend(self, instruction: str, answer: str, attempt: int = 0) -> str | None:
        settings = self.config.extender
        if attempt >= settings.max_attempts:
            return None
        best = answer
        for _ in range(settings.rounds):
            candidate = self.extension_round(instruction, best)
            if candidate is not None and count_words(candidate) > count_words(best):
                best = candidate
        if count_words(best) > settings.min_growth * count_words(answer):
            return best
        self.reject("extend.too_little_growth")
        return self.extend(instruction, answer, attempt + 1)

    def extension_round(self, instruction: str, current: str) -> str | None:
        """Enrich the first half by chat, keep its leading part, continue the whole by raw completion."""
        half = join_paragraphs(first_half(split_paragraphs(current)))
        enriched = self.request(self.config.sampling, messages=extend_request(instruction, half, self.lang))
        if not enriched or not enriched.strip():
            self.reject("extend.no_enrichment")
            return None
        kept = leading_fraction(enriched, self.config.extender.keep_fraction)
        chat_prompt = self.tokenizer.apply_chat_template(
            extend_request(instruction, current, self.lang), tokenize=False, add_generation_prompt=True
        )
        continuation = self.request(self.config.sampling, prompt=chat_prompt + kept)
        if continuation is None:
            return None
        candidate = (kept + continuation).strip()
        ok, reason = passes_filters(candidate, self.lang, self.config.filters)
        if not ok:
            self.reject(f"extend.{reason}")
        return candidate if ok else None

    # -- the loop ---------------------------------------------------------------------------

    def run(self, seeds: list[str]) -> ClientRun:
        """Each step on the whole thread pool; the next starts when every slot of this one is done."""
        config, pool = self.config, list(seeds)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=config.max_in_flight) as executor:
            count = config.self_instruct.instructions_per_language
            keys = [f"si/{self.lang}/{index}" for index in range(count)]
            written = list(executor.map(lambda key: self.write_instruction(pool, key), keys))
            instructions = [text for text in written if text is not None]
            if config.self_instruct.include_seeds:
                instructions = list(seeds) + instructions
            asked = [text for text in instructions for _ in range(config.generator.samples_per_instruction)]
            answered = list(executor.map(self.answer, asked))
            pairs = [(question, reply) for question, reply in zip(asked, answered) if reply is not None]
            jobs = [pair for pair in pairs for _ in range(config.extender.extensions_per_answer)]
            extended = list(executor.map(lambda pair: self.extend(*pair), jobs))
        return ClientRun(
            name="reference",
            seconds=time.perf_counter() - started,
            requests=self.tally.requests,
            prompt_tokens=self.tally.prompt_tokens,
            completion_tokens=self.tally.completion_tokens,
            instruction_slots=len(keys),
            instructions=sum(text is not None for text in written),
            answer_slots=len(asked),
            answers=len(pairs),
            extension_slots=len(jobs),
            extensions=sum(text is not None for text in extended),
            rejections=dict(sorted(self.rejections.items())),
        )
