"""One async client for OpenAI-compatible endpoints, with bounded concurrency and retries.

It implements `infra.backend.TextBackend`, so the method and the judges talk to a server the
same way as to the in-process engine. (lm-eval talks to servers through its own client; its
gen_kwargs come from `lm_eval_gen_kwargs` here.) Retries with exponential backoff on timeouts, 5xx,
429 and connection errors come from the `openai` package itself (`max_retries`); once they
are spent the caller gets an `EndpointError` with one line saying what failed.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import math
from typing import Any, Literal

from packaging.version import Version

from harness.errors import UserError, first_line
from harness.serving.serve import Endpoint
from infra.backend import Completion, MissingLogprobs, TokenLogprob, Unsupported, truncate_at_stop
from infra.sampling import SamplingConfig, model_sampling_defaults


class UnsupportedSetting(UserError, Unsupported):
    """A sampling field the target cannot honour: a one-line user error, and `Unsupported` to backends' callers."""


class EndpointError(UserError):
    """The endpoint could not be reached or refused a request after all retries."""


_STRUCTURED = frozenset({"json_schema", "top_logprobs"})
FEATURES: dict[str, frozenset[str]] = {
    "transformers": frozenset(),  # transformers serve takes neither a JSON schema nor logprobs
    "vllm": _STRUCTURED,
    "inprocess": _STRUCTURED,
    "openai": _STRUCTURED,  # OpenAI's own fields; a reply without the logprobs asked for: MissingLogprobs
}
"""The optional SamplingConfig fields each server kind honours."""


def sampling_request(
    sampling: SamplingConfig,
    kind: str,
    model_defaults: dict[str, Any] | None = None,
    api: Literal["chat", "completions"] = "chat",
) -> dict[str, Any]:
    """Map a SamplingConfig to request fields for one server kind and API: the only place that knows.

    - transformers serve samples only when `do_sample` is true, which no OpenAI field sets, and
      refuses top_k / repetition_penalty as plain fields (422): they travel in a
      `generation_config` JSON string. With continuous batching the first request's config is
      shared by all later ones, so a server must be warmed up with its role's sampling (before
      5.25; see `transformers_cb_takes_request_sampling`). That
      JSON replaces the model's own generation config, so `model_defaults` (its eos/pad ids)
      go in first, or generation would not stop at the end-of-turn token.
    - vLLM and the inprocess server take top_k and repetition_penalty as extra body fields, per request.
    - any other OpenAI-compatible server gets the standard fields only, and top_k or
      repetition_penalty is refused rather than dropped.
    - `json_schema`: OpenAI's `response_format` (strict), except vLLM's own `structured_outputs`.
      `top_logprobs`: chat sends `logprobs: true` + `top_logprobs: n`, completions `logprobs: n`.
      A kind without them (transformers) refuses them (`refuse_unsupported`) instead of dropping them.
    """
    refuse_unsupported(sampling, f"endpoint-{kind}", "sampling")
    fields: dict[str, Any] = {"temperature": sampling.temperature, "max_tokens": sampling.max_tokens}
    if sampling.do_sample:
        fields["top_p"] = sampling.top_p
    if sampling.stop:
        fields["stop"] = list(sampling.stop)
    if sampling.seed is not None:
        fields["seed"] = sampling.seed
    extra: dict[str, Any] = {}
    if kind == "transformers":
        generation = dict(model_defaults or {})
        generation.update(do_sample=sampling.do_sample, max_new_tokens=sampling.max_tokens)
        if sampling.do_sample:
            generation.update(temperature=sampling.temperature, top_p=sampling.top_p)
            if sampling.top_k is not None:
                generation["top_k"] = sampling.top_k
        if sampling.repetition_penalty is not None:
            generation["repetition_penalty"] = sampling.repetition_penalty
        extra["generation_config"] = json.dumps(generation)
    elif kind in ("vllm", "inprocess"):
        if sampling.top_k is not None:
            extra["top_k"] = sampling.top_k
        if sampling.repetition_penalty is not None:
            extra["repetition_penalty"] = sampling.repetition_penalty
    if sampling.json_schema is not None:
        if kind == "vllm":
            extra["structured_outputs"] = {"json": sampling.json_schema}
        else:
            fields["response_format"] = {
                "type": "json_schema", "json_schema": {"name": "reply", "schema": sampling.json_schema, "strict": True}
            }
    if sampling.top_logprobs is not None:
        if api == "chat":
            fields.update(logprobs=True, top_logprobs=sampling.top_logprobs)
        else:
            fields["logprobs"] = sampling.top_logprobs
    if extra:
        fields["extra_body"] = extra
    return fields


LM_EVAL_MAX_STOP = 4
"""lm-eval's chat-completions backend sends only the first four stop strings."""


def lm_eval_gen_kwargs(sampling: SamplingConfig, backend: str, model_defaults: dict[str, Any] | None = None,
                       where: str = "eval.sampling") -> dict[str, Any]:
    """lm-eval's gen_kwargs for `backend`: hf, vllm, or `endpoint-<kind>[-cb]` (see `endpoint_target`).

    Answer length is lm-eval's `max_gen_toks`, so `max_tokens` is not mapped here; what a backend
    cannot honour is refused (`refuse_unsupported`), never dropped.
    """
    refuse_unsupported(sampling, f"lm-eval-{backend}", where)
    if backend == "hf":
        kwargs: dict[str, Any] = {"do_sample": sampling.do_sample, "temperature": sampling.temperature}
        if sampling.do_sample:
            kwargs["top_p"] = sampling.top_p
            if sampling.top_k is not None:
                kwargs["top_k"] = sampling.top_k
        if sampling.repetition_penalty is not None:
            kwargs["repetition_penalty"] = sampling.repetition_penalty
    elif backend == "vllm":
        kwargs = {"do_sample": sampling.do_sample, "temperature": sampling.temperature, "top_p": sampling.top_p}
        if sampling.top_k is not None:
            kwargs["top_k"] = sampling.top_k
        if sampling.seed is not None:
            kwargs["seed"] = sampling.seed
        if sampling.repetition_penalty is not None:
            kwargs["repetition_penalty"] = sampling.repetition_penalty
    else:
        kind = backend.removeprefix("endpoint-").removesuffix("-cb")
        request = sampling_request(sampling, kind, model_defaults)
        kwargs = {k: v for k, v in request.items() if k not in ("extra_body", "max_tokens", "stop")}
        kwargs.update(request.get("extra_body", {}))
    if sampling.stop:
        kwargs["until"] = list(sampling.stop)
    return kwargs


def transformers_cb_takes_request_sampling() -> bool:
    """Whether the installed `transformers serve --continuous-batching` samples with a request's settings.

    Up to 5.24 it shares the first request's generation config (the harness warms each role's server up
    with its sampling). From 5.25 it samples with the model's own generation config and drops a request's
    temperature, top-k and top-p unless that config sets them, so a sampled role would decode greedily.
    """
    return Version(importlib.metadata.version("transformers")) < Version("5.25")


def refuse_unsupported(sampling: SamplingConfig, target: str, where: str) -> None:
    """A one-line UserError naming the first field of `sampling` that `target` cannot honour.

    Targets: `inprocess`, `endpoint-transformers-cb` (transformers serve with continuous batching,
    which drops repetition_penalty), `endpoint-transformers`, `endpoint-vllm`, `endpoint-openai`,
    and lm-eval's `lm-eval-hf`, `lm-eval-vllm`, `lm-eval-endpoint-<kind>`.
    """
    refusals = []
    if target.startswith("endpoint-transformers"):
        for name in sorted(_STRUCTURED):
            if getattr(sampling, name) is not None:
                refusals.append((name, "transformers serve takes neither a JSON schema nor logprobs "
                                       "(use an inprocess or vllm server)"))
    if target.startswith("lm-eval"):
        if sampling.json_schema is not None:
            refusals.append(("json_schema", "lm-eval generates free text"))
        if sampling.top_logprobs is not None:
            refusals.append(("top_logprobs", "lm-eval's generation requests return no log-probabilities"))
        if sampling.max_tokens != SamplingConfig().max_tokens:
            refusals.append(("max_tokens", "answer length is the task's max_gen_toks (eval.max_gen_toks)"))
    if target == "lm-eval-hf" and sampling.seed is not None:
        refusals.append(("seed", "lm-eval's hf backend has no per-request sampler seed"))
    if target.startswith("lm-eval-endpoint") and len(sampling.stop) > LM_EVAL_MAX_STOP:
        refusals.append(("stop", f"lm-eval sends at most {LM_EVAL_MAX_STOP} stop strings to an endpoint"))
    if target.startswith("lm-eval-endpoint-transformers") and sampling.stop:
        refusals.append(("stop", "transformers serve ignores stop strings and lm-eval does not cut at them"))
    if target.endswith("endpoint-openai"):
        for name in ("top_k", "repetition_penalty"):
            if getattr(sampling, name) is not None:
                refusals.append((name, "a generic OpenAI-compatible endpoint has no such field"))
    if target.endswith("transformers-cb") and sampling.do_sample and not transformers_cb_takes_request_sampling():
        refusals.append(("temperature", f"transformers {importlib.metadata.version('transformers')} serve with "
                         "continuous batching samples with the model's generation config, not the request's (use "
                         "the inprocess backend, vllm, server.continuous_batching: false, or transformers < 5.25)"))
    if target.endswith("transformers-cb") and sampling.repetition_penalty is not None:
        refusals.append(("repetition_penalty", "transformers serve with continuous batching drops it "
                         "(use the inprocess backend, vllm, or server.continuous_batching: false)"))
    if refusals:
        name, why = refusals[0]
        raise UnsupportedSetting(f"{where}.{name} cannot be honoured: {why}")


def endpoint_target(kind: str, continuous_batching: bool) -> str:
    """The `refuse_unsupported` target of a server of `kind`."""
    return f"endpoint-{kind}" + ("-cb" if kind == "transformers" and continuous_batching else "")


class EndpointClient:
    """Chat and raw completions against one endpoint, at most `max_concurrency` in flight."""

    def __init__(self, endpoint: Endpoint, max_concurrency: int = 8, max_retries: int = 3, timeout: float = 600.0):
        self.endpoint = endpoint
        self.features = FEATURES.get(endpoint.kind, frozenset())
        self.max_concurrency = max_concurrency
        import openai  # here, not at the top: refusing a bad config must not wait for it

        self._openai = openai.AsyncOpenAI(
            base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=max_retries, timeout=timeout
        )
        self._semaphore: asyncio.Semaphore | None = None
        self._tokenizer = None
        self._model_defaults: dict[str, Any] | None = None

    async def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Completion:
        async with self._slot():
            response = await self._call(
                self._openai.chat.completions.create,
                model=self.endpoint.model,
                messages=messages,
                **self._sampling_fields(sampling, "chat"),
            )
        choice = response.choices[0]
        logprobs = _chat_logprobs(choice.logprobs, sampling)
        completion = _completion(choice.message.content, choice.finish_reason, response.usage, sampling.stop, logprobs)
        return self._with_logprobs(completion, sampling)

    async def complete(self, prompt: str, sampling: SamplingConfig) -> Completion:
        async with self._slot():
            response = await self._call(
                self._openai.completions.create,
                model=self.endpoint.model,
                prompt=prompt,
                **self._sampling_fields(sampling, "completions"),
            )
        choice = response.choices[0]
        logprobs = _completion_logprobs(choice.logprobs, sampling)
        completion = _completion(choice.text, choice.finish_reason, response.usage, sampling.stop, logprobs)
        return self._with_logprobs(completion, sampling)

    def _with_logprobs(self, completion: Completion, sampling: SamplingConfig) -> Completion:
        """The completion, or MissingLogprobs (holding it) when logprobs were asked for and none came."""
        if sampling.top_logprobs is not None and completion.logprobs is None:
            raise MissingLogprobs(f"top_logprobs was asked for but {self.endpoint.base_url} returned no logprobs",
                                  completion)
        return completion

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        """The served model's chat prompt, to continue by raw completion."""
        if self._tokenizer is None:
            if not self.endpoint.tokenizer:
                raise UserError("raw continuation needs the endpoint's tokenizer (set `tokenizer` for a remote endpoint)")
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.endpoint.tokenizer)
        return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _sampling_fields(self, sampling: SamplingConfig, api: Literal["chat", "completions"]) -> dict[str, Any]:
        if self.endpoint.kind == "transformers" and self._model_defaults is None:
            self._model_defaults = served_generation_defaults(self.endpoint.tokenizer)
        return sampling_request(sampling, self.endpoint.kind, self._model_defaults, api)

    async def close(self) -> None:
        await self._openai.close()

    def _slot(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        return self._semaphore

    async def _call(self, method, **kwargs):
        import openai

        where = self.endpoint.base_url
        try:
            return await method(**kwargs)
        except openai.APITimeoutError:
            raise EndpointError(f"request to {where} timed out after all retries") from None
        except openai.APIConnectionError as exc:
            raise EndpointError(f"cannot reach the endpoint at {where}: {first_line(exc.__cause__ or exc)}") from None
        except openai.APIStatusError as exc:
            raise EndpointError(f"{where} answered HTTP {exc.status_code}: {first_line(exc.__cause__ or exc)}") from None


def served_generation_defaults(model: str | None) -> dict[str, Any]:
    """What a transformers server needs in every generation config it is sent, which replaces the model's
    own: the token ids, and the sampling fields the model sets (for a request that leaves them unset)."""
    if not model:
        return {}
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(model)
    except OSError:
        return {}
    keys = ("bos_token_id", "eos_token_id", "pad_token_id")
    return {**{k: getattr(config, k) for k in keys if getattr(config, k, None) is not None},
            **model_sampling_defaults(config)}


def _completion(
    text: str | None, finish_reason: str | None, usage, stop: list[str], logprobs: list[TokenLogprob] | None = None
) -> Completion:
    """The reply, cut at the first stop string: transformers serve's continuous batching ignores
    `stop`, and without it leaves the stop string in the text; OpenAI's contract is to cut there."""
    text, stopped = truncate_at_stop(text or "", stop)
    return Completion(
        text=text,
        finish_reason="stop" if stopped else finish_reason,
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
        logprobs=logprobs,
    )


def _chat_logprobs(logprobs, sampling: SamplingConfig) -> list[TokenLogprob] | None:
    """`choices[0].logprobs.content` as TokenLogprobs; None when none were asked for or none came."""
    if sampling.top_logprobs is None or logprobs is None or logprobs.content is None:
        return None
    return [
        TokenLogprob(e.token, e.logprob, _merged((t.token, t.logprob) for t in e.top_logprobs or []))
        for e in logprobs.content
    ]


def _completion_logprobs(logprobs, sampling: SamplingConfig) -> list[TokenLogprob] | None:
    """The legacy parallel lists (`tokens`, `token_logprobs`, `top_logprobs`) as TokenLogprobs; None as above."""
    if sampling.top_logprobs is None or logprobs is None or logprobs.tokens is None:
        return None
    tops = logprobs.top_logprobs or [None] * len(logprobs.tokens)
    return [
        TokenLogprob(token, value, _merged((top or {}).items()))
        for token, value, top in zip(logprobs.tokens, logprobs.token_logprobs, tops)
    ]


def _merged(pairs) -> dict[str, float]:
    """Alternatives keyed by text; tokens with the same text (byte pieces) share their summed probability."""
    top: dict[str, float] = {}
    for text, value in pairs:
        if text in top:
            high, low = max(top[text], value), min(top[text], value)
            value = high + math.log1p(math.exp(low - high))
        top[text] = value
    return top

