"""OpenAI's request and response shapes for `infra.openai_server`, as pure functions.

A request becomes a `SamplingConfig` here, and a `Completion` becomes a response body. Every field
that would change the result is either honoured or refused with a `RequestError` naming it (HTTP
400): a server that silently ignored `n=2` or an unknown `response_format` would hand back something
other than what was asked for. Fields that change nothing (`user`, `stream: false`, zero penalties,
an empty `logit_bias`) are accepted.

Defaults follow OpenAI's API, not SamplingConfig's: an absent `temperature` is 1.0, and an absent
`max_tokens` is SamplingConfig's 512.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from infra.backend import Completion, TokenLogprob
from infra.sampling import SamplingConfig

MAX_TOP_LOGPROBS = 20  # OpenAI's cap for chat; vLLM's default max_logprobs

_COMMON = {"model", "max_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "stop", "seed", "n",
           "stream", "response_format", "structured_outputs", "presence_penalty", "frequency_penalty",
           "logit_bias", "user", "logprobs"}
_CHAT = _COMMON | {"messages", "max_completion_tokens", "top_logprobs"}
_COMPLETIONS = _COMMON | {"prompt", "echo", "suffix", "best_of"}


class RequestError(ValueError):
    """A request the server refuses; `param` names the field, `status` is the HTTP status."""

    def __init__(self, param: str | None, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": "invalid_request_error", "param": self.param, "code": None}}


def chat_request(body: dict[str, Any],
                 defaults: dict[str, Any] | None = None) -> tuple[list[dict[str, str]], SamplingConfig]:
    """The messages and sampling of a /v1/chat/completions body."""
    _refuse_unknown(body, _CHAT)
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise RequestError("max_completion_tokens", "give max_tokens or max_completion_tokens, not both")
    max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    wants_logprobs = body.get("logprobs")
    if wants_logprobs is not None and not isinstance(wants_logprobs, bool):
        raise RequestError("logprobs", "logprobs must be true or false in a chat request")
    top = _top_logprobs(body, "top_logprobs")
    if top is not None and not wants_logprobs:
        raise RequestError("top_logprobs", "top_logprobs needs logprobs: true")
    if wants_logprobs and top is None:
        top = 0
    return _messages(body.get("messages")), _sampling(body, max_tokens, top, defaults or {})


def completion_request(body: dict[str, Any], defaults: dict[str, Any] | None = None) -> tuple[str, SamplingConfig]:
    """The prompt and sampling of a /v1/completions body."""
    _refuse_unknown(body, _COMPLETIONS)
    if body.get("echo"):
        raise RequestError("echo", "echo is not supported")
    if body.get("suffix"):
        raise RequestError("suffix", "suffix is not supported")
    if body.get("best_of") not in (None, 1):
        raise RequestError("best_of", "best_of must be 1")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError("prompt", "prompt must be one string")
    return prompt, _sampling(body, _positive_int(body, "max_tokens"), _top_logprobs(body, "logprobs"), defaults or {})


def chat_response(completion: Completion, model: str) -> dict[str, Any]:
    """An OpenAI chat.completion body; `logprobs.content` when logprobs were asked for."""
    logprobs = None
    if completion.logprobs is not None:
        logprobs = {"content": [
            {"token": entry.token, "logprob": entry.logprob, "bytes": list(entry.token.encode()),
             "top_logprobs": [{"token": text, "logprob": value, "bytes": list(text.encode())}
                              for text, value in entry.top.items()]}
            for entry in completion.logprobs
        ]}
    choice = {"index": 0, "message": {"role": "assistant", "content": completion.text},
              "logprobs": logprobs, "finish_reason": completion.finish_reason}
    return _envelope("chatcmpl", "chat.completion", model, choice, completion)


def completion_response(completion: Completion, model: str) -> dict[str, Any]:
    """An OpenAI text_completion body; `logprobs` in the legacy parallel-lists shape when asked for."""
    choice = {"index": 0, "text": completion.text, "logprobs": _legacy_logprobs(completion.logprobs),
              "finish_reason": completion.finish_reason}
    return _envelope("cmpl", "text_completion", model, choice, completion)


def _legacy_logprobs(entries: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if entries is None:
        return None
    offsets, offset = [], 0
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.token)
    return {"tokens": [e.token for e in entries], "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [dict(e.top) for e in entries], "text_offset": offsets}


def _envelope(prefix: str, kind: str, model: str, choice: dict, completion: Completion) -> dict[str, Any]:
    prompt_tokens, completion_tokens = completion.prompt_tokens or 0, completion.completion_tokens or 0
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    if completion.draft_tokens:  # this request's speculative acceptance; OpenAI clients keep unknown usage fields
        usage |= {"draft_tokens": completion.draft_tokens, "accepted_draft_tokens": completion.accepted_draft_tokens}
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": model,
            "choices": [choice], "usage": usage}


def _sampling(body: dict[str, Any], max_tokens: int | None, top_logprobs: int | None,
              defaults: dict[str, Any]) -> SamplingConfig:
    """The request's sampling; a field it leaves unset takes the model's `defaults` (its generation_config),
    else OpenAI's default; top_k and repetition_penalty stay unset for the engine to fill the same way."""
    if body.get("stream"):
        raise RequestError("stream", "stream is not supported; send stream: false")
    if body.get("n") not in (None, 1):
        raise RequestError("n", "n must be 1: this server returns one choice per request")
    for penalty in ("presence_penalty", "frequency_penalty"):
        if body.get(penalty) not in (None, 0, 0.0):
            raise RequestError(penalty, f"{penalty} is not supported (use repetition_penalty)")
    if body.get("logit_bias"):
        raise RequestError("logit_bias", "logit_bias is not supported")
    temperature = _number(body, "temperature", defaults.get("temperature", 1.0))
    top_p = _number(body, "top_p", defaults.get("top_p", 1.0))
    if not 0 < top_p <= 1:
        raise RequestError("top_p", f"top_p must be in (0, 1], got {top_p}")
    penalty = _number(body, "repetition_penalty", None)
    if penalty is not None and penalty <= 0:
        raise RequestError("repetition_penalty", f"repetition_penalty must be positive, got {penalty}")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError("seed", "seed must be an integer")
    return SamplingConfig(
        temperature=temperature, top_p=top_p, top_k=_positive_int(body, "top_k"), repetition_penalty=penalty,
        max_tokens=max_tokens or SamplingConfig().max_tokens, stop=_stop(body.get("stop")), seed=seed,
        json_schema=_json_schema(body), top_logprobs=top_logprobs,
    )


def _json_schema(body: dict[str, Any]) -> dict | None:
    """The schema from OpenAI's `response_format` or vLLM's `structured_outputs: {"json": ...}`."""
    from_format = _response_format_schema(body.get("response_format"))
    structured = body.get("structured_outputs")
    if structured is None:
        return from_format
    if from_format is not None:
        raise RequestError("structured_outputs", "give response_format or structured_outputs, not both")
    if not isinstance(structured, dict) or set(structured) != {"json"}:
        keys = ", ".join(sorted(structured)) if isinstance(structured, dict) else type(structured).__name__
        raise RequestError("structured_outputs", f"structured_outputs supports only {{\"json\": schema}}, got {keys}")
    schema = structured["json"]
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError:
            raise RequestError("structured_outputs.json", "structured_outputs.json is not valid JSON") from None
    if not isinstance(schema, dict):
        raise RequestError("structured_outputs.json", "structured_outputs.json must be a JSON schema object")
    return schema


def _response_format_schema(response_format: Any) -> dict | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise RequestError("response_format.json_schema.schema", "response_format.json_schema.schema must be an object")
        return schema
    raise RequestError("response_format.type", f"response_format type {kind!r} is not supported "
                                               "(text, json_object or json_schema)")


def _messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages", "messages must be a non-empty list")
    plain = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(f"messages[{i}]", f"messages[{i}] must be an object with a role")
        extra = sorted(set(message) - {"role", "content"})
        if extra:
            raise RequestError(f"messages[{i}].{extra[0]}", f"messages[{i}].{extra[0]} is not supported")
        plain.append({"role": message["role"], "content": _text_content(message.get("content"), i)})
    return plain


def _text_content(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise RequestError(f"messages[{i}].content", f"messages[{i}].content must be a string or text parts")


def _refuse_unknown(body: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise RequestError(unknown[0], f"unsupported field {unknown[0]!r}")


def _number(body: dict[str, Any], name: str, default: float | None) -> float | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise RequestError(name, f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(name, f"{name} must be a positive integer, got {value!r}")
    return value


def _top_logprobs(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOP_LOGPROBS:
        raise RequestError(name, f"{name} must be an integer from 0 to {MAX_TOP_LOGPROBS}, got {value!r}")
    return value


def _stop(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise RequestError("stop", "stop must be a string or a list of strings")
