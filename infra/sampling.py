"""How to sample: one typed config that every backend maps to its own wire format."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class SamplingConfig:
    """Sampling parameters for one role (generator, extender, judge...).

    Fields:
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling mass.
        top_k: keep the k most likely tokens; None leaves it to the server.
        repetition_penalty: >1 discourages repeats; None leaves it to the server.
        max_tokens: new tokens at most.
        stop: strings that end generation.
        seed: fixes the server's sampler where the server supports it.
        json_schema: constrain the reply to this JSON schema (structured output).
        top_logprobs: return this many most likely tokens, with log-probabilities, at each position.

    A backend that cannot honour a field refuses the request (`Unsupported`), never drops it.
    """

    temperature: float = field(default=0.0, metadata={"help": "0 means greedy decoding."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass."})
    top_k: int | None = field(default=None, metadata={"help": "Top-k cut-off; None leaves the server's default."})
    repetition_penalty: float | None = field(default=None, metadata={"help": "Repetition penalty; None leaves the server's default."})
    max_tokens: int = field(default=512, metadata={"help": "Maximum number of new tokens."})
    stop: list[str] = field(default_factory=list, metadata={"help": "Stop strings."})
    seed: int | None = field(default=None, metadata={"help": "Sampler seed, where the server honours one."})
    json_schema: dict | None = field(
        default=None, metadata={"help": "JSON schema the reply must follow (structured output); None: free text."}
    )
    top_logprobs: int | None = field(
        default=None, metadata={"help": "Return the top-n tokens with log-probabilities at each position; None: none."}
    )

    def __post_init__(self) -> None:
        """Refuse what no backend can honour, before any request is made."""
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1 or unset, got {self.top_k!r}")
        if self.repetition_penalty is not None and not (
                math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            raise ValueError(f"repetition_penalty must be a finite number > 0 or unset, got {self.repetition_penalty!r}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens!r}")
        if self.top_logprobs is not None and self.top_logprobs < 0:
            raise ValueError(f"top_logprobs must be at least 0 or unset, got {self.top_logprobs!r}")

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0


GREEDY = SamplingConfig()

MODEL_DEFAULTED = ("temperature", "top_p", "top_k", "repetition_penalty")
"""The sampling fields a checkpoint's generation_config may set for requests that leave them unset."""


def model_sampling_defaults(generation_config) -> dict[str, float | int]:
    """What a request that leaves a sampling field unset gets, on every server kind: the value the
    checkpoint's generation_config sets, as vLLM does by default (`--generation-config auto`)."""
    return {name: getattr(generation_config, name) for name in MODEL_DEFAULTED
            if getattr(generation_config, name, None) is not None}
