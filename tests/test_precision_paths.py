"""Every path whose arithmetic depends on the precision, run under fp32 and under bf16 on any CPU.

`forced_precision` (conftest) makes `precision: auto` mean one of the two for the test and its child
processes, so a CPU without AVX512-BF16 runs the bf16 paths too (emulated, slower) and one with it
runs the fp32 paths: whichever CPU CI gets, both are covered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import subprocess
import sys

import pytest

from infra.compute import use_bf16
from infra.inprocess import InProcessBackend, InProcessConfig
from infra.sampling import SamplingConfig
from tests.schemas import JUDGE_SCHEMA, follows_judge_schema
from tests.test_selflengthen_lora import PROMPT, quick_config, write_chat_jsonl

CHAT = [{"role": "user", "content": "Write a long essay"}]
GREEDY = SamplingConfig(max_tokens=8, repetition_penalty=2.0)


def dtype_name(forced: str) -> str:
    return {"fp32": "torch.float32", "bf16": "torch.bfloat16"}[forced]


def gather(*calls):
    async def run():
        return await asyncio.gather(*calls)

    return asyncio.run(run())


def test_auto_follows_the_forced_precision(forced_precision):
    assert use_bf16("auto") is (forced_precision == "bf16")
    assert use_bf16("fp32") is False and use_bf16("bf16") is True  # an explicit setting still wins


@pytest.mark.slow
def test_lora_trains_resumes_and_merges_under_each_precision(forced_precision, tiny_model_dir, tmp_path, monkeypatch):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from selflengthen.lora import train_role
    from selflengthen.merge import merge_adapter

    torch.set_num_threads(1)
    data = write_chat_jsonl(tmp_path / "train.jsonl")
    real_step, calls = SFTTrainer.training_step, []

    def crash_on_second_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected crash")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(SFTTrainer, "training_step", crash_on_second_step)
    with pytest.raises(RuntimeError, match="injected crash"):
        train_role(data, tiny_model_dir, tmp_path / "gen", quick_config())
    monkeypatch.setattr(SFTTrainer, "training_step", real_step)
    adapter = train_role(data, tiny_model_dir, tmp_path / "gen", quick_config())
    stats = json.loads((adapter / "train_stats.json").read_text())
    assert stats["resumed_from"].endswith("checkpoint-1") and stats["steps"] == 2
    assert math.isfinite(stats["final_loss"])

    merged_dir = merge_adapter(tiny_model_dir, adapter, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    ids = torch.tensor([[1, 5, 9, 13]])
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter)
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits.float(), with_adapter(ids).logits.float(), atol=1e-2)


@pytest.mark.slow
def test_accelerate_launch_trains_on_the_cpu_under_each_precision(forced_precision, tiny_model_dir, tmp_path):
    data = write_chat_jsonl(tmp_path / "train.jsonl")
    out = tmp_path / "gen"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "selflengthen.lora", "--train_file", str(data), "--base_model", str(tiny_model_dir),
               "--output_dir", str(out), "--max_steps", "1", "--torch_threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["steps"] == 1 and stats["config"]["precision"] == "auto"


def test_the_engine_loads_decodes_and_constrains_under_each_precision(forced_precision, tiny_model_dir):
    import torch

    with InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1)) as engine:
        assert str(engine.model.dtype) == dtype_name(forced_precision)

        ids = engine.tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            output = engine.model.generate(**ids, max_new_tokens=GREEDY.max_tokens, do_sample=False,
                                           repetition_penalty=GREEDY.repetition_penalty,
                                           pad_token_id=engine.tokenizer.pad_token_id)
        expected = engine.tokenizer.decode(output[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        assert gather(engine.complete(PROMPT, GREEDY))[0].text == expected

        seeded = SamplingConfig(temperature=1.0, max_tokens=8, seed=11)
        first, second = gather(engine.chat(CHAT, seeded), engine.chat(CHAT, seeded))
        assert first.text == second.text

        judged = SamplingConfig(temperature=1.0, max_tokens=300, json_schema=JUDGE_SCHEMA, top_logprobs=20)
        reply = gather(engine.chat(CHAT, judged))[0]
        assert follows_judge_schema(reply.text)
        assert all(sum(math.exp(v) for v in entry.top.values()) <= 1.0 + 1e-3 for entry in reply.logprobs)


def test_a_seeded_answer_is_the_same_at_any_concurrency_batch_and_run_under_each_precision(
        forced_precision, tiny_model_dir):
    """Batch invariance: eight seeded requests alone, four at a time beside unseeded companions, all
    together in a crowd of 32, and again in a second engine with two lanes give the same eight texts, token for
    token."""
    seeded = [(f"Write about {topic}.", SamplingConfig(temperature=1.0, max_tokens=24, seed=seed))
              for seed, topic in enumerate(["rivers", "a long war", "cats", "the sea", "bread", "maps", "rain", "tea"])]
    companion = SamplingConfig(temperature=0.7, top_k=20, max_tokens=40, repetition_penalty=1.3)

    def answers(engine, concurrency: int, companions: int) -> list[str]:
        texts = []
        for start in range(0, len(seeded), concurrency):
            wave = [engine.chat([{"role": "user", "content": p}], s) for p, s in seeded[start:start + concurrency]]
            others = [engine.chat([{"role": "user", "content": f"Tell me {i} things" * (1 + i % 5)}], companion)
                      for i in range(companions)]
            texts += [reply.text for reply in gather(*wave, *others)[:len(wave)]]
        return texts

    config = InProcessConfig(tiny_model_dir, torch_threads=1, max_batch_size=32)
    with InProcessBackend(config) as engine:
        alone = answers(engine, concurrency=1, companions=0)
        assert len(set(alone)) > 1  # sampled, and seeds that differ draw differently
        assert answers(engine, concurrency=4, companions=4) == alone
        rows, steps = engine.stats.rows_decoded, engine.stats.decode_steps
        assert answers(engine, concurrency=8, companions=24) == alone
        assert (engine.stats.rows_decoded - rows) / (engine.stats.decode_steps - steps) > 8  # the crowd shared steps
    with InProcessBackend(dataclasses.replace(config, lanes=2)) as second_run:  # and in two lanes side by side
        assert answers(second_run, concurrency=8, companions=3) == alone


def test_judge_weighting_scores_the_engines_logprobs_under_each_precision(forced_precision, tiny_model_dir):
    from judges import JudgeConfig, judge_scores

    samples = {"tasks": {"longbench_write_en_mini": {"samples": [
        {"doc_id": 0, "prompt": "Write 50 words about rivers.", "response": "Rivers run to the sea."}]}}}
    with InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1)) as engine:
        judged = asyncio.run(judge_scores(samples, engine, JudgeConfig(model="tiny", max_tokens=300), progress=False))
    assert judged["judge"]["structured"] and judged["judge"]["top_logprobs"]
    judgement = judged["tasks"]["longbench_write_en_mini"]["samples"][0]
    assert judgement["error"] is None, judgement
    assert judgement["weighted"]  # the engine's logprobs were weighted, not only the argmax kept
    assert all(1.0 <= value <= 5.0 and math.isfinite(value) for value in judgement["scores"].values())


def test_speculative_decoding_gives_greedy_answers_token_for_token_under_each_precision(
        forced_precision, tiny_model_dir):
    """n-gram drafts verified in one pass change nothing a greedy row writes, schema and log-probabilities
    included: every verified position's logits are those of one-token-at-a-time decoding."""
    prompts = [f"Say {word} {word} {word} and again {word} {word}" for word in ["one", "sea", "red", "tea"]]
    plain = SamplingConfig(max_tokens=48)
    judged = SamplingConfig(max_tokens=120, json_schema=JUDGE_SCHEMA, top_logprobs=3)

    def answers(speculative_tokens: int):
        config = InProcessConfig(tiny_model_dir, torch_threads=1, speculative_tokens=speculative_tokens)
        with InProcessBackend(config) as engine:
            replies = gather(*[engine.chat([{"role": "user", "content": p}], plain) for p in prompts],
                             engine.chat(CHAT, judged))
            return [(r.text, r.logprobs) for r in replies], engine.stats

    (without, one_at_a_time), (with_drafts, stats) = answers(0), answers(4)
    assert with_drafts == without
    assert stats.accepted > 0 and stats.decode_steps < one_at_a_time.decode_steps  # rows took several tokens a step


def test_a_seeded_answer_is_the_same_text_at_any_draft_length_under_each_precision(forced_precision, tiny_model_dir):
    """A position's draft guess orders its draw whether it was verified or not, so how many tokens a step
    drafts (the config's, or more for a row on a streak while the tile has room) changes no seeded text."""
    prompts = [f"Say {word} {word} {word} and again {word} {word}" for word in ["one", "sea", "red", "tea"]]
    sampled = [SamplingConfig(temperature=0.7, top_k=2, max_tokens=40, seed=seed) for seed in range(len(prompts))]

    def answers(speculative_tokens: int):
        config = InProcessConfig(tiny_model_dir, torch_threads=1, speculative_tokens=speculative_tokens)
        with InProcessBackend(config) as engine:
            replies = gather(*[engine.chat([{"role": "user", "content": p}], s) for p, s in zip(prompts, sampled)])
            return [r.text for r in replies], engine.stats

    (one, stats), (four, _), (twelve, _) = answers(1), answers(4), answers(12)
    assert one == four == twelve and len(set(one)) > 1
    assert stats.drafted > stats.rows_decoded  # rows on a streak drafted past the one token asked for


def test_speculative_sampling_draws_each_next_token_from_the_same_distribution_under_each_precision(
        forced_precision, tiny_model_dir):
    """Two-sample chi-square per position over 400 seeds: the engine with drafts against the one without.
    Drafts are kept and rejected often here (top-2 of a repeated prompt). A verifier that redraws from
    the whole distribution after a rejection fails this (measured: p down to 4e-9)."""
    from collections import Counter

    from scipy.stats import chi2_contingency

    prompt = [{"role": "user", "content": "a b a b a b a b"}]

    def draws(speculative_tokens: int):
        config = InProcessConfig(tiny_model_dir, torch_threads=1, max_batch_size=32,
                                 speculative_tokens=speculative_tokens, ngram_shortest=1)
        with InProcessBackend(config) as engine:
            sampling = [SamplingConfig(temperature=1.0, top_k=2, max_tokens=6, seed=seed) for seed in range(400)]
            replies = gather(*[engine.complete(engine.apply_chat_template(prompt), s) for s in sampling])
            ids = [engine.tokenizer(r.text, add_special_tokens=False)["input_ids"] for r in replies]
            return ids, engine.stats

    (plain, _), (drafted, stats) = draws(0), draws(4)
    assert 0 < stats.accepted < stats.drafted  # both paths of the verifier ran
    for position in range(1, 5):
        a = Counter(tuple(ids[:position + 1]) for ids in plain)
        b = Counter(tuple(ids[:position + 1]) for ids in drafted)
        common = [key for key in set(a) | set(b) if a[key] + b[key] >= 10]
        table = [[a[k] for k in common] + [400 - sum(a[k] for k in common)],
                 [b[k] for k in common] + [400 - sum(b[k] for k in common)]]
        table = [list(column) for column in zip(*table) if sum(column) > 0]
        assert chi2_contingency(list(zip(*table))).pvalue > 0.001 / 4, position
