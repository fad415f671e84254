"""The judge pipeline against a real (tiny, random-weight) model generating in-process.

A random model answers with garbage, so every sample must end as a counted failure with an
error string after the bounded retries, and nothing may crash. Structured output and logprobs are
turned off (a schema-constrained random model would write valid JSON), so requests must be plain.
"""

from __future__ import annotations

import asyncio

import pytest

from judges import JudgeConfig, judge_scores
from infra.inprocess import InProcessBackend, InProcessConfig


class CountingBackend:
    """The real in-process backend, counting chat requests (the judge's only calls)."""

    def __init__(self, backend: InProcessBackend):
        self.backend = backend
        self.features = getattr(backend, "features", frozenset())
        self.samplings = []

    async def chat(self, messages, sampling):
        self.samplings.append(sampling)
        return await self.backend.chat(messages, sampling)

    async def complete(self, prompt, sampling):
        return await self.backend.complete(prompt, sampling)

    def apply_chat_template(self, messages):
        return self.backend.apply_chat_template(messages)


@pytest.mark.slow
def test_random_model_judge_records_failures_without_crashing(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scores = {
        "model": "tiny",
        "tasks": {
            "longbench_write_en_mini": {
                "samples": [
                    {"doc_id": 0, "prompt": "Write about 100 words on rivers.", "response": "Rivers flow to the sea."},
                    {"doc_id": 1, "prompt": "写一篇关于春天的文章。", "response": "春天来了。"},
                ]
            },
            "longen_mini": {"samples": [{"doc_id": 0, "prompt": "Write 2000 words on a fox.", "response": "The quick fox."}]},
        },
    }
    config = JudgeConfig(
        model="tiny-random", max_tokens=24, max_retries=1, max_concurrency=2, cache_path=str(tmp_path / "c.sqlite"),
        structured="never", top_logprobs=0,
    )

    with InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1)) as engine:
        backend = CountingBackend(engine)
        result = asyncio.run(judge_scores(scores, backend, config, progress=False))

    assert len(backend.samplings) == 3 * 2
    assert all(s.json_schema is None and s.top_logprobs is None for s in backend.samplings)
    for task in result["tasks"].values():
        assert task["failures"] == task["n"] and task["S_q"] is None
        for sample in task["samples"]:
            assert sample["quality"] is None and "[after 2 attempts]" in sample["error"]
            assert sample["error"].startswith("unusable reply:")
            assert "\n" not in sample["error"]
