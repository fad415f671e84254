"""Pairwise judging against a reference arm (AlpacaEval's design), reported as win rates.

Each prompt's two answers (the model's, the reference model's) are judged in both orders, model
first then reference first, so a judge that favours a position cancels out and its bias is measured.
A prompt's preference for the model is the mean of its two orders (A wins 1, tie 0.5, B wins 0, or
with logprobs p(model) + p(tie)/2 at the verdict token). Per task: the win rate with a bootstrap
interval, AlpacaEval 2's length-controlled win rate, and the position-bias rate (the share of prompts
whose verdict changes with the order).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from string import Template
from typing import Any

import yaml

from judges.cache import JudgementCache
from judges.config import JudgeConfig
from judges.errors import JudgeError, JudgeReplyError
from judges.judge import Judge, request_mode
from judges.judgements import ProgressOption, plan_tasks, progress_tracker
from judges.json_spans import json_objects
from judges.rubric import RUBRIC_DIR
from judges.stats import bootstrap_ci, length_controlled_win_rate
from judges.weighting import last_value_span, value_distribution
from infra.backend import TextBackend, TokenLogprob

PAIRWISE_RUBRIC_DIR = RUBRIC_DIR / "pairwise"
_VERDICT_KEYS = ("verdict", "winner", "better", "preferred", "choice")
_VERDICT_KEY = r"\b(?:verdict|winner|better|preferred|choice)\b[\"'*\s]*[:=]\s*[\"'\[]*\s*(?:response|output)?[\s_]*"
_VERDICT_TEXT = re.compile(r"^\W*(?:(?:response|output)[\s_]*)?(a|b|tie)\W*$", re.IGNORECASE)
_PREFERENCE = {"A": 1.0, "B": 0.0, "tie": 0.5}
"""Preference for response A, by verdict."""


@dataclass(frozen=True)
class PairwiseRubric:
    """The prompt that asks which of two responses is better."""

    name: str
    version: int
    system: str
    template: str

    def messages(self, instruction: str, output_a: str, output_b: str) -> list[dict[str, str]]:
        user = Template(self.template).substitute(instruction=instruction, output_a=output_a, output_b=output_b)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    @staticmethod
    def json_schema() -> dict:
        return {
            "type": "object",
            "properties": {"verdict": {"type": "string", "enum": list(_PREFERENCE)}},
            "required": ["verdict"],
            "additionalProperties": False,
        }


@dataclass
class PairwiseConfig:
    """How to compare a run with the reference arm.

    Fields:
        rubric: packaged pairwise rubric name or a YAML path.
        bootstrap_resamples: resamples of prompts for the win rate's 95% interval.
        seed: seeds the bootstrap.
    """

    rubric: str = field(default="pairwise", metadata={"help": "Pairwise rubric: packaged name or YAML path."})
    bootstrap_resamples: int = field(default=2000, metadata={"help": "Bootstrap resamples for the win-rate interval."})
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap."})


@dataclass(frozen=True)
class Verdict:
    """One order's verdict and, from logprobs, the probabilities of A, B and tie (None without them)."""

    label: str
    probabilities: dict[str, float] | None

    def preference_for_a(self) -> float:
        if self.probabilities is None:
            return _PREFERENCE[self.label]
        return sum(_PREFERENCE[label] * p for label, p in self.probabilities.items())


def load_pairwise_rubric(name_or_path: str | Path = "pairwise") -> PairwiseRubric:
    """A pairwise rubric by packaged name or YAML path; its template holds $instruction, $output_a, $output_b."""
    path = Path(name_or_path)
    path = path if path.suffix else PAIRWISE_RUBRIC_DIR / f"{name_or_path}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        rubric = PairwiseRubric(str(data["name"]), int(data["version"]), str(data["system"]), str(data["template"]))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise JudgeError(f"cannot load pairwise rubric {str(name_or_path)!r}: {type(exc).__name__}: {exc}") from None
    if not all(f"${v}" in rubric.template for v in ("instruction", "output_a", "output_b")):
        raise JudgeError(f"pairwise rubric {path}: the template must contain $instruction, $output_a and $output_b")
    return rubric


def parse_verdict(text: str, tokens: list[TokenLogprob] | None = None) -> Verdict:
    """The verdict of the last JSON object naming one (else the last `Verdict: X` in prose), with its probabilities."""
    label = None
    for obj in json_objects(text).objects:
        if isinstance(obj, dict):
            found = next((_verdict_label(obj[k]) for k in obj if str(k).lower() in _VERDICT_KEYS), None)
            label = found or label
    if label is None:
        spans = [m.group(1) for m in re.finditer(_VERDICT_KEY + r"(a|b|tie)\b", text, re.IGNORECASE)]
        label = _verdict_label(spans[-1]) if spans else None
    if label is None:
        raise JudgeReplyError(f"no verdict (A, B or tie) in the reply: {' '.join(text.split())[:80]!r}")
    probabilities = None
    if tokens:
        span = last_value_span("".join(t.token for t in tokens), _VERDICT_KEY, r"a|b|tie", lambda v: _verdict_label(v) == label)
        if span is not None:
            probabilities = value_distribution(tokens, *span, {"A": "A", "B": "B", "tie": "tie"})
    return Verdict(label, probabilities)


async def judge_pairwise(
    scores: dict[str, Any],
    reference: dict[str, Any],
    client: TextBackend,
    config: JudgeConfig,
    pairwise: PairwiseConfig,
    *,
    progress: ProgressOption = True,
) -> dict[str, Any]:
    """Compare each task's answers with the reference run's answers to the same prompts; the pairwise report."""
    rubric = load_pairwise_rubric(pairwise.rubric)
    tasks = {plan.task: _pairs(plan.task, plan.samples, reference) for plan in plan_tasks(scores, config)}
    tasks = {task: pairs for task, pairs in tasks.items() if pairs is not None}
    mode = request_mode(client, config)
    with JudgementCache(config.cache_path) as cache, progress_tracker(
        progress, 2 * sum(len(p) for p in tasks.values()), f"comparing with {config.model}"
    ) as advance:
        judge = Judge(client, config, cache, asyncio.Semaphore(config.max_concurrency), mode)

        async def order(prompt: str, a: str, b: str):
            key = judge.key(rubric.name, rubric.version, prompt, json.dumps([a, b], ensure_ascii=False), repeat=0, temperature=0.0)
            schema = rubric.json_schema() if mode.structured else None
            reply = await judge.ask(key, rubric.messages(prompt, a, b), parse_verdict, temperature=0.0, schema=schema)
            advance()
            return reply

        async def compare(sample: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
            model_first, reference_first = await asyncio.gather(
                order(sample["prompt"], sample["response"], ref["response"]),
                order(sample["prompt"], ref["response"], sample["response"]),
            )
            return compared_sample(sample, ref, model_first.value, reference_first.value, model_first.error or reference_first.error)

        results = {
            task: await asyncio.gather(*(compare(s, r) for s, r in pairs)) for task, pairs in tasks.items()
        }
    return {
        "judge": {"model": config.model, "rubric": rubric.name, "structured": mode.structured, "top_logprobs": mode.top_logprobs},
        "reference": reference.get("model"),
        "tasks": {task: summarize_pairwise(samples, pairwise) for task, samples in results.items()},
    }


def compared_sample(
    sample: dict[str, Any], ref: dict[str, Any], model_first: Verdict | None, reference_first: Verdict | None, error: str | None
) -> dict[str, Any]:
    """One prompt's record: both orders' verdicts, the model's preference, whether the verdict flipped."""
    both = model_first is not None and reference_first is not None
    return {
        "doc_id": sample.get("doc_id"),
        "model_first": None if model_first is None else model_first.__dict__,
        "reference_first": None if reference_first is None else reference_first.__dict__,
        "preference": fmean([model_first.preference_for_a(), 1 - reference_first.preference_for_a()]) if both else None,
        "flipped": (_PREFERENCE[model_first.label] != 1 - _PREFERENCE[reference_first.label]) if both else None,
        "weighted": both and model_first.probabilities is not None and reference_first.probabilities is not None,
        "length_diff": len(sample["response"]) - len(ref["response"]),
        "error": None if both else error,
    }


def summarize_pairwise(samples: list[dict[str, Any]], pairwise: PairwiseConfig) -> dict[str, Any]:
    """A task's win rate (ties half) with its bootstrap interval, LC win rate and position-bias rate."""
    judged = [s for s in samples if s["preference"] is not None]
    preferences = [s["preference"] for s in judged]
    return {
        "n": len(samples),
        "failures": len(samples) - len(judged),
        "win_rate": fmean(preferences) if judged else None,
        "win_rate_ci": bootstrap_ci(preferences, pairwise.seed, pairwise.bootstrap_resamples),
        "lc_win_rate": length_controlled_win_rate(preferences, [s["length_diff"] for s in judged]),
        "position_bias_rate": fmean(s["flipped"] for s in judged) if judged else None,
        "weighted_samples": sum(s["weighted"] for s in judged),
        "samples": samples,
    }


def _pairs(task: str, samples: list[dict[str, Any]], reference: dict[str, Any]) -> list[tuple[dict, dict]] | None:
    """The task's samples matched with the reference run's by doc_id; None when the reference lacks the task."""
    ref_task = (reference.get("tasks") or {}).get(task)
    if not isinstance(ref_task, dict) or not isinstance(ref_task.get("samples"), list):
        return None
    by_id = {s.get("doc_id"): s for s in ref_task["samples"] if isinstance(s, dict) and isinstance(s.get("response"), str)}
    pairs = []
    for sample in samples:
        ref = by_id.get(sample.get("doc_id"))
        if ref is None:
            continue
        if ref.get("prompt") != sample["prompt"]:
            raise JudgeError(f"task {task!r} doc_id {sample.get('doc_id')!r}: the reference run's prompt differs")
        pairs.append((sample, ref))
    return pairs


def _verdict_label(value: Any) -> str | None:
    match = _VERDICT_TEXT.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    found = match.group(1).lower()
    return "tie" if found == "tie" else found.upper()
