"""Ray Data LLM's vLLM processor under `backend.ray.engine: vllm`, on a GPU: a row naming an adapter is a LoRA request
(the pitfall of ray-project/ray PR #62609: per-row LoRA silently dropped). Skipped without CUDA, vLLM or Ray Data LLM;
not run in this project's CI (no GPU)."""

from __future__ import annotations

import importlib.util

import pytest

from harness.synthesis.ray_stage import RayStageConfig, run_step
from tests.test_selflengthen_merge_dtype import random_adapter


def gpu_with_vllm() -> bool:
    if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("ray") is None:
        return False
    import torch

    return torch.cuda.is_available()


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not gpu_with_vllm(), reason="needs a CUDA GPU, vLLM and pip install -e '.[ray-gpu]'")]


def test_a_lora_row_on_the_vllm_processor_differs_from_the_base_row(tiny_model_dir, tmp_path):
    import ray

    adapter = random_adapter(tiny_model_dir, tmp_path / "adapter")
    greedy = {"prompt": "Draft: the river ran", "sampling": {"temperature": 0.0, "max_tokens": 16}}
    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        rows = run_step([{"key": "base", **greedy}, {"key": "lora", **greedy, "model": "generator"},
                         {"key": "base again", **greedy, "sampling": {**greedy["sampling"], "seed": 1}}],
                        {"model": str(tiny_model_dir), "adapters": {"generator": str(adapter)}}, tmp_path / "step",
                        RayStageConfig(engine="vllm", concurrency=1, shard_size=3, max_lora_rank=8))
    finally:
        ray.shutdown()
    texts = {row["key"]: row["text"] for row in rows}
    assert texts["base"] == texts["base again"]  # greedy: the seed changes nothing
    assert texts["lora"] != texts["base"]
