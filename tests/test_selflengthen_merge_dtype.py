"""A merged checkpoint keeps its base's dtype: a bf16 base gives bf16 weights on disk (not fp32, twice the size)."""

from __future__ import annotations

import json

import pytest

from selflengthen.merge import merge_adapter


def base_in(dtype_name: str, tiny_model_dir, out):
    """The tiny model saved in `dtype_name`, with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).to(getattr(torch, dtype_name))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def random_adapter(base_dir, out):
    """A LoRA adapter with non-zero weights on every attention projection (PEFT's own format)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), config).save_pretrained(out)
    return out


def saved_dtypes(folder) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        return {str(weights.get_tensor(name).dtype) for name in weights.keys()}


@pytest.mark.parametrize("dtype_name", ["bfloat16", "float32"])
def test_a_merged_checkpoint_is_saved_in_its_base_dtype(dtype_name, tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = base_in(dtype_name, tiny_model_dir, tmp_path / "base")
    adapter = random_adapter(base, tmp_path / "adapter")
    merged_dir = merge_adapter(base, adapter, tmp_path / "merged")

    config = json.loads((merged_dir / "config.json").read_text(encoding="utf-8"))
    assert config.get("dtype", config.get("torch_dtype")) == dtype_name
    assert saved_dtypes(merged_dir) == {f"torch.{dtype_name}"}
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype="auto")
    assert merged.dtype == getattr(torch, dtype_name)

    # The adapter really is folded in: the merged model answers like the base with the adapter attached.
    ids = torch.tensor([[1, 5, 9, 13, 21]])
    base_model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with torch.no_grad():
        plain = base_model(ids).logits.float()
        with_adapter = PeftModel.from_pretrained(base_model, adapter)(ids).logits.float()
        folded = merged(ids).logits.float()
    assert (with_adapter - plain).abs().max() > 0.2  # the adapter moves the logits (max |logit| is ~0.5)
    assert (folded - with_adapter).abs().max() < (2e-2 if dtype_name == "bfloat16" else 1e-5)
