"""lm-eval's `local-chat-completions`, reporting each finished request to a progress callback.

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


@register_model("selflengthen-chat")
class ProgressChatCompletion(LocalChatCompletion):
    async def amodel_call(self, *args, **kwargs):
        answers = await super().amodel_call(*args, **kwargs)
        if _on_request_done is not None:
            _on_request_done()
        return answers
