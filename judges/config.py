"""The judge's one typed config, loadable from YAML by the harness's config loader."""

from __future__ import annotations

from dataclasses import dataclass, field

from judges.errors import JudgeError


@dataclass
class JudgeConfig:
    """How to run an LLM judge over a run's scores.

    Fields:
        model: the judge model's name as its endpoint knows it; part of every cache key.
        rubric: "auto" (pick per task by name) or a packaged rubric name or a rubric YAML path.
        structured: "auto" sends the rubric's JSON schema when the backend honours it, "always" requires it,
            "never" relies on the tolerant parser alone.
        top_logprobs: alternatives per token to ask for, to weight scores by probability (G-Eval) when the
            backend honours it; 0 turns weighting off.
        max_tokens: new tokens at most per judge reply.
        max_response_chars: responses longer than this are cut before judging; None sends them whole.
        retry_temperature: temperature of retries after a failed attempt.
        max_concurrency: judge requests in flight at most.
        max_retries: extra attempts after a failed one before the sample is recorded as a failure.
        cache_path: sqlite file caching every successful reply; None keeps the cache in memory.
    """

    # judge
    model: str = field(default="", metadata={"help": "Judge model name, as the endpoint knows it; part of every cache key."})
    rubric: str = field(
        default="auto",
        metadata={
            "help": "'auto' grades longbench_write* tasks with the longbench_write rubric, longen* with longen, "
            "and skips the others; a rubric name or a .yaml path grades every task with that rubric."
        },
    )
    max_response_chars: int | None = field(
        default=None,
        metadata={
            "help": "Cut responses longer than this many characters (with a marker) to fit a small judge's context; "
            "None sends them whole, as the published protocols do."
        },
    )
    structured: str = field(
        default="auto",
        metadata={
            "help": "'auto': constrain replies to the rubric's JSON schema when the backend supports it; "
            "'always': refuse to run on a backend without it; 'never': free text and the tolerant parser."
        },
    )
    top_logprobs: int = field(
        default=20,
        metadata={
            "help": "Top alternatives per token, for probability-weighted scores (G-Eval, Liu et al. 2023) "
            "on backends that return them; 0: argmax scores only."
        },
    )
    # sampling (first attempts are greedy)
    max_tokens: int = field(default=512, metadata={"help": "Maximum new tokens per judge reply."})
    retry_temperature: float = field(
        default=0.7,
        metadata={"help": "Temperature for retries: a greedy retry would repeat the same unusable reply."},
    )
    # execution
    max_concurrency: int = field(default=8, metadata={"help": "Judge requests in flight at most."})
    max_retries: int = field(
        default=2, metadata={"help": "Extra attempts after a failed one; then the sample is recorded as a failure."}
    )
    cache_path: str | None = field(
        default=None,
        metadata={"help": "SQLite file caching successful replies so re-runs cost nothing; None keeps it in memory."},
    )

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise JudgeError("JudgeConfig.model must name the judge model")
        if self.max_concurrency < 1:
            raise JudgeError(f"JudgeConfig.max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.max_retries < 0:
            raise JudgeError(f"JudgeConfig.max_retries must be 0 or more, got {self.max_retries}")
        if self.max_tokens < 1:
            raise JudgeError(f"JudgeConfig.max_tokens must be at least 1, got {self.max_tokens}")
        if self.max_response_chars is not None and self.max_response_chars < 1:
            raise JudgeError(f"JudgeConfig.max_response_chars must be at least 1 or None, got {self.max_response_chars}")
        if self.structured not in ("auto", "always", "never"):
            raise JudgeError(f"JudgeConfig.structured must be auto, always or never, got {self.structured!r}")
        if self.top_logprobs < 0:
            raise JudgeError(f"JudgeConfig.top_logprobs must be 0 or more, got {self.top_logprobs}")
        if self.retry_temperature < 0:
            raise JudgeError(f"JudgeConfig.retry_temperature must be 0 or more, got {self.retry_temperature}")
