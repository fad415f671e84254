"""The judge pipeline against a real (tiny, random-weight) model generating in-process.

A random model answers with garbage, so every sample must end as a counted failure with an
error string after the bounded retries, and nothing may crash.
"""

from __future__ import annotations

import asyncio

import pytest

from judges import JudgeConfig, judge_scores_sync
from infra.backend import Completion
from infra.sampling import SamplingConfig


class InProcessChatBackend:
    """A minimal TextBackend over transformers `generate`, for this test only."""

    def __init__(self, model_dir):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(1)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.calls = 0

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    async def chat(self, messages, sampling: SamplingConfig) -> Completion:
        return await self.complete(self.apply_chat_template(messages), sampling)

    async def complete(self, prompt: str, sampling: SamplingConfig) -> Completion:
        self.calls += 1
        return await asyncio.to_thread(self._generate, prompt, sampling)

    def _generate(self, prompt: str, sampling: SamplingConfig) -> Completion:
        import torch

        inputs = self.tokenizer(prompt, return_tensors="pt")
        options = {"do_sample": sampling.do_sample, "max_new_tokens": sampling.max_tokens}
        if sampling.do_sample:
            options |= {"temperature": sampling.temperature, "top_p": sampling.top_p}
        with torch.no_grad():
            output = self.model.generate(**inputs, **options)
        new = output[0, inputs["input_ids"].shape[1] :]
        ended = new.numel() and new[-1].item() == self.tokenizer.eos_token_id
        return Completion(
            text=self.tokenizer.decode(new, skip_special_tokens=True),
            finish_reason="stop" if ended else "length",
            prompt_tokens=inputs["input_ids"].shape[1],
            completion_tokens=new.numel(),
        )


@pytest.mark.slow
def test_random_model_judge_records_failures_without_crashing(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backend = InProcessChatBackend(tiny_model_dir)
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
    config = JudgeConfig(model="tiny-random", max_tokens=24, max_retries=1, max_concurrency=2, cache_path=str(tmp_path / "c.sqlite"))

    result = judge_scores_sync(scores, backend, config, progress=False)

    assert backend.calls == 3 * 2
    for task in result["tasks"].values():
        assert task["failures"] == task["n"] and task["S_q"] is None
        for sample in task["samples"]:
            assert sample["quality"] is None and "[after 2 attempts]" in sample["error"]
            assert sample["error"].startswith("unusable reply:")
            assert "\n" not in sample["error"]
