"""Fold a LoRA adapter into its base model: a plain checkpoint any server loads by path.

The merged folder appears whole or not at all: it is written into a hidden staging folder beside
it and renamed into place. A staging folder left by a killed merge is removed by the next merge.
The merged weights keep the base's dtype (its config's `dtype`, bf16 for Qwen2.5): a merged 7B
checkpoint is ~15 GB like its base, not ~30 GB of fp32, and loads in the base's precision.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def merge_adapter(base_model: str | Path, adapter_dir: Path, output_dir: Path) -> Path:
    """Fold a LoRA adapter into the base weights: a plain checkpoint that any server loads by path."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter_dir} holds no adapter_config.json")
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in output_dir.parent.glob(f".{output_dir.name}.*"):  # left by a merge that was killed
        shutil.rmtree(stale, ignore_errors=True)
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype="auto")  # the checkpoint's own dtype
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    tokenizer_source = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_model
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}."))
    merged.save_pretrained(staging)
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(staging)
    try:
        GenerationConfig.from_pretrained(base_model).save_pretrained(staging)
    except OSError:
        merged.generation_config.save_pretrained(staging)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    os.replace(staging, output_dir)
    return output_dir
