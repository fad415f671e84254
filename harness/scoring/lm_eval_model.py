"""lm-eval's `local-chat-completions`, reporting each finished request to a progress callback
and each answer's `finish_reason` ('length': cut by the token cap) to a recorder.

Registered as `selflengthen-chat`; everything else (payloads, retries, the request cache
that makes an interrupted eval resume) is lm-eval's own.
"""

from __future__ import annotations

from collections.abc import Callable

from lm_eval.api.registry import register_model
from lm_eval.models.openai_completions import LocalChatCompletion

_on_request_done: Callable[[], None] | None = None


def set_progress_callback(callback: Callable[[], None] | None) -> None:
    """Call `callback` after each finished generation request (None to stop)."""
    global _on_request_done
    _on_request_done = callback


_on_answers: Callable[[list, list, list], None] | None = None


def set_finish_reason_recorder(callback: Callable[[list, list, list], None] | None) -> None:
    """Call `callback(contexts, answers, finish_reasons)` for each reply from the endpoint (None to stop).

    lm-eval keeps only the answer text; the finish reason is what tells an answer cut by the cap.
    """
    global _on_answers
    _on_answers = callback


def prompt_seed(seed: int, messages: list[dict]) -> int:
    """The sampler seed of one prompt: a re-run draws the same answer whatever else is in flight."""
    import json

    from infra.rng import item_seed

    return item_seed(seed, json.dumps(messages, ensure_ascii=False, sort_keys=True))


@register_model("selflengthen-chat")
class ProgressChatCompletion(LocalChatCompletion):
    def _create_payload(self, messages, generate=False, gen_kwargs=None, seed=1234, eos=None, **kwargs):
        """lm-eval's payload, its one seed for every request replaced by one per prompt (`prompt_seed`)."""
        payload = super()._create_payload(messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed, eos=eos,
                                          **kwargs)
        payload["seed"] = prompt_seed(payload["seed"], messages)
        return payload

    def parse_generations(self, outputs, **kwargs):
        """lm-eval's answer texts; each choice's finish_reason is kept in `_finish_reasons` for `amodel_call`
        (no await lies between the two, so concurrent requests cannot swap them) or recorded here when
        lm-eval passes the contexts (its one-request-at-a-time path)."""
        answers = super().parse_generations(outputs, **kwargs)
        reasons = []
        for out in outputs if isinstance(outputs, list) else [outputs]:  # the same walk as lm-eval's
            try:
                ordered = [None] * len(out["choices"])
                for choice in out["choices"]:
                    ordered[choice["index"]] = choice.get("finish_reason")
            except (IndexError, KeyError, TypeError, AttributeError):  # lm-eval answers "" for such a reply
                ordered = [None]
            reasons += ordered
        self._finish_reasons = reasons
        if _on_answers is not None and kwargs.get("contexts") is not None:
            _on_answers(list(kwargs["contexts"]), answers, reasons)
        return answers

    async def amodel_call(self, *args, **kwargs):
        answers = await super().amodel_call(*args, **kwargs)
        if _on_answers is not None and kwargs.get("generate", True) and kwargs.get("messages") is not None:
            _on_answers(list(kwargs["messages"]), answers, self._finish_reasons)
        if _on_request_done is not None:
            _on_request_done()
        return answers
