"""`train.num_processes > 1`: the LoRA training runs under `accelerate launch`, same outputs and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selflengthen.lora import FINISHED_MARKER, TrainConfig, main, train_role

PROMPT = "Write a long essay about the river."
ANSWERS = ["The quick brown fox jumps.", "It was a bright cold day in April.", "The river ran.", "Rain fell all day."]


def write_chat_jsonl(path: Path) -> Path:
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": PROMPT},
                                                     {"role": "assistant", "content": a}]}) + "\n" for a in ANSWERS))
    return path


@pytest.mark.parametrize("field, value, message", [
    ("num_processes", 0, "num_processes must be at least 1"),
    ("deepspeed_config", "/nonexistent/ds_z3.json", "is not a file"),
])
def test_training_settings_for_several_processes_are_checked_up_front(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_a_finished_adapter_is_not_launched_again(tmp_path):
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / FINISHED_MARKER).write_text("{}")
    assert train_role(tmp_path / "absent.jsonl", "absent-model", tmp_path / "gen", TrainConfig(num_processes=2)) \
        == tmp_path / "gen"
    assert not (tmp_path / "gen" / "launch.log").exists()


@pytest.mark.slow
def test_two_cpu_processes_under_accelerate_launch_train_an_adapter_that_loads_and_generates(tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = TrainConfig(num_processes=2, max_steps=2, logging_steps=1, torch_threads=1, learning_rate=1e-2)
    out = train_role(write_chat_jsonl(tmp_path / "train.jsonl"), tiny_model_dir, tmp_path / "gen", config)

    stats = json.loads((out / FINISHED_MARKER).read_text())
    # Two steps of one example per process cover the four examples once: both processes trained.
    assert (stats["steps"], stats["epochs"], stats["samples_trained"]) == (2, 1.0, 4)
    assert stats["config"]["num_processes"] == 2 and stats["config"]["save_total_limit"] == 2  # unset stays unset
    assert not (out / "checkpoints").exists()
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        base_logits = base(ids).logits
        tuned = PeftModel.from_pretrained(base, out)
        assert not torch.allclose(tuned(ids).logits, base_logits)  # the adapter learned something
        generated = tuned.generate(ids, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 5


@pytest.mark.slow
def test_the_command_line_reads_every_setting_from_one_json_file(tiny_model_dir, tmp_path):
    settings = {"train_file": str(write_chat_jsonl(tmp_path / "train.jsonl")), "base_model": str(tiny_model_dir),
                "output_dir": str(tmp_path / "gen"), "max_steps": 1, "torch_threads": 1, "lora_r": 4,
                "save_total_limit": None}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    assert main([str(tmp_path / "settings.json")]) == 0
    stats = json.loads((tmp_path / "gen" / FINISHED_MARKER).read_text())
    assert stats["config"]["lora_r"] == 4 and stats["config"]["save_total_limit"] is None
