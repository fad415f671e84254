"""LoRA fine-tuning of a role: real TRL/PEFT training on the tiny model, a few steps each."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from selflengthen.lora import (
    TrainConfig,
    answer_length_stats,
    load_prompt_completion_pairs,
    main,
    train_role,
)
from selflengthen.merge import merge_adapter

ANSWERS = ["The quick brown fox jumps.", "It was a bright cold day in April, and the river ran."]
PROMPT = "Write a long essay about the river."


@pytest.fixture(autouse=True)
def _offline_single_thread(monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)


def write_chat_jsonl(path: Path, answers: list[str] = ANSWERS) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for answer in answers:
            messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": answer}]
            out.write(json.dumps({"messages": messages}) + "\n")
    return path


def quick_config(**overrides) -> TrainConfig:
    settings = dict(max_steps=2, logging_steps=1, save_steps=1, torch_threads=1, learning_rate=1e-2)
    settings.update(overrides)
    return TrainConfig(**settings)


def adapter_tensors(adapter_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(adapter_dir / "adapter_model.safetensors")


def test_pairs_split_last_assistant_message_from_prompt(tmp_path):
    pairs = load_prompt_completion_pairs(write_chat_jsonl(tmp_path / "train.jsonl"))
    assert pairs[0] == {
        "prompt": [{"role": "user", "content": PROMPT}],
        "completion": [{"role": "assistant", "content": ANSWERS[0]}],
    }


def test_pairs_reject_a_line_not_ending_with_the_assistant(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl line 1: the last message must be the assistant's"):
        load_prompt_completion_pairs(path)


def test_pairs_reject_invalid_json_with_line_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": []}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"bad.jsonl line 1: expected"):
        load_prompt_completion_pairs(path)
    path.write_text("\n{oops\n")
    with pytest.raises(ValueError, match=r"bad.jsonl line 2: malformed JSON"):
        load_prompt_completion_pairs(path)


def test_answer_length_counts_words_and_characters():
    pairs = [{"completion": [{"content": "one two three"}]}, {"completion": [{"content": "春天来了"}]}]
    assert answer_length_stats(pairs) == {"answer_words_mean": (3 + 4) / 2, "answer_chars_mean": (13 + 4) / 2}


@pytest.mark.slow
def test_training_refuses_data_whose_answers_max_length_cuts_off(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = [{"role": "user", "content": PROMPT}]
    prompt_length = len(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)["input_ids"])
    config = quick_config(max_length=prompt_length)
    with pytest.raises(ValueError, match=f"no example in .*train.jsonl keeps an answer token within max_length={prompt_length}"):
        train_role(write_chat_jsonl(tmp_path / "train.jsonl"), tiny_model_dir, tmp_path / "gen", config)


def test_config_rejects_unknown_precision():
    with pytest.raises(ValueError, match="precision must be"):
        TrainConfig(precision="fp8")


@pytest.mark.slow
def test_train_role_writes_adapter_tokenizer_and_finite_loss(tiny_model_dir, tmp_path):
    out = train_role(write_chat_jsonl(tmp_path / "train.jsonl"), tiny_model_dir, tmp_path / "gen", quick_config())
    assert (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    assert (out / "tokenizer.json").is_file()
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["steps"] == 2
    assert math.isfinite(stats["final_loss"]) and math.isfinite(stats["mean_loss"])
    assert not (out / "checkpoints").exists()


@pytest.mark.slow
def test_train_stats_match_hand_counts(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    out = train_role(write_chat_jsonl(tmp_path / "train.jsonl"), tiny_model_dir, tmp_path / "gen", quick_config())
    stats = json.loads((out / "train_stats.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = [{"role": "user", "content": PROMPT}]
    full_lengths = [
        len(tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": a}], tokenize=True)["input_ids"])
        for a in ANSWERS
    ]
    prompt_length = len(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)["input_ids"])
    assert stats["samples"] == stats["samples_trained"] == 2
    assert stats["answer_words_mean"] == (5 + 12) / 2
    assert stats["answer_chars_mean"] == (26 + 53) / 2
    assert stats["train_tokens"] == sum(full_lengths)
    assert stats["loss_tokens"] == sum(length - prompt_length for length in full_lengths)


@pytest.mark.slow
def test_train_role_returns_at_once_when_finished(tiny_model_dir, tmp_path):
    data = write_chat_jsonl(tmp_path / "train.jsonl")
    out = train_role(data, tiny_model_dir, tmp_path / "gen", quick_config())
    before = (out / "train_stats.json").read_text()
    data.write_text("this is no longer valid training data\n")
    assert train_role(data, tiny_model_dir, out, quick_config()) == out
    assert (out / "train_stats.json").read_text() == before


@pytest.mark.slow
def test_train_role_resumes_from_last_checkpoint_after_a_crash(tiny_model_dir, tmp_path, monkeypatch):
    from trl import SFTTrainer

    data = write_chat_jsonl(tmp_path / "train.jsonl")
    real_step = SFTTrainer.training_step
    calls = []

    def crash_on_second_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected crash")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(SFTTrainer, "training_step", crash_on_second_step)
    with pytest.raises(RuntimeError, match="injected crash"):
        train_role(data, tiny_model_dir, tmp_path / "gen", quick_config())
    assert (tmp_path / "gen" / "checkpoints" / "checkpoint-1").is_dir()
    assert not (tmp_path / "gen" / "train_stats.json").exists()

    monkeypatch.setattr(SFTTrainer, "training_step", real_step)
    stats = json.loads((train_role(data, tiny_model_dir, tmp_path / "gen", quick_config()) / "train_stats.json").read_text())
    assert stats["resumed_from"].endswith("checkpoint-1")
    assert stats["steps"] == 2


@pytest.mark.slow
def test_continuing_starts_from_init_adapter_weights(tiny_model_dir, tmp_path):
    data = write_chat_jsonl(tmp_path / "train.jsonl")
    first = train_role(data, tiny_model_dir, tmp_path / "iter1", quick_config())
    frozen = train_role(data, tiny_model_dir, tmp_path / "iter2", quick_config(learning_rate=0.0), init_adapter=first)
    init, continued = adapter_tensors(first), adapter_tensors(frozen)
    assert init.keys() == continued.keys()
    assert all(init[name].equal(continued[name]) for name in init)


@pytest.mark.slow
def test_continuing_changes_init_adapter_weights(tiny_model_dir, tmp_path):
    data = write_chat_jsonl(tmp_path / "train.jsonl")
    first = train_role(data, tiny_model_dir, tmp_path / "iter1", quick_config())
    second = train_role(data, tiny_model_dir, tmp_path / "iter2", quick_config(), init_adapter=first)
    init, continued = adapter_tensors(first), adapter_tensors(second)
    assert any(not init[name].equal(continued[name]) for name in init)
    assert json.loads((second / "train_stats.json").read_text())["init_adapter"] == str(first)


@pytest.mark.slow
def test_merged_checkpoint_loads_generates_and_matches_adapter(tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = train_role(write_chat_jsonl(tmp_path / "train.jsonl"), tiny_model_dir, tmp_path / "gen", quick_config())
    merged_dir = merge_adapter(tiny_model_dir, adapter, tmp_path / "merged")
    assert (merged_dir / "generation_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = tokenizer("Write a long essay", return_tensors="pt").input_ids
    output = merged.generate(ids, max_new_tokens=5, do_sample=False)
    assert output.shape[1] > ids.shape[1]

    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter)
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, with_adapter(ids).logits, atol=1e-5)


@pytest.mark.slow
def test_merge_removes_the_staging_folder_a_killed_merge_left(tiny_model_dir, tmp_path):
    adapter = train_role(write_chat_jsonl(tmp_path / "train.jsonl"), tiny_model_dir, tmp_path / "gen", quick_config())
    left_behind = tmp_path / ".merged.abc123"
    (left_behind / "part").mkdir(parents=True)
    (left_behind / "part" / "model.safetensors").write_bytes(b"half written")
    merge_adapter(tiny_model_dir, adapter, tmp_path / "merged")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".merged")) == []
    assert (tmp_path / "merged" / "config.json").is_file()


def test_merge_adapter_rejects_a_folder_without_adapter(tiny_model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no adapter_config.json"):
        merge_adapter(tiny_model_dir, tmp_path, tmp_path / "merged")


@pytest.mark.slow
def test_command_line_for_accelerate_launch_trains_with_config_flags(tiny_model_dir, tmp_path):
    data = write_chat_jsonl(tmp_path / "train.jsonl")
    argv = ["--train_file", str(data), "--base_model", str(tiny_model_dir), "--output_dir", str(tmp_path / "gen"),
            "--max_steps", "1", "--lora_r", "4", "--torch_threads", "1"]
    assert main(argv) == 0
    stats = json.loads((tmp_path / "gen" / "train_stats.json").read_text())
    assert stats["steps"] == 1
    assert stats["config"]["lora_r"] == 4
    assert json.loads((tmp_path / "gen" / "adapter_config.json").read_text())["r"] == 4
