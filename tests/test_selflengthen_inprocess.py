"""The in-process batched backend: real generate calls on the tiny model."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from selflengthen.backend import TextBackend, truncate_at_stop
from selflengthen.inprocess import (
    FusedTopKTopP,
    InProcessBackend,
    InProcessConfig,
    completion_from_tokens,
)
from selflengthen.sampling import SamplingConfig

# Greedy with a repetition penalty: deterministic, and varied enough text on the random tiny model.
GREEDY = SamplingConfig(max_tokens=12, repetition_penalty=2.0)
SAMPLED = SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=12)
PROMPTS = ["The quick brown", "Please answer in about 300 words. Paragraphs", "0123456789 numbers, lists: one"]
CHAT = [{"role": "user", "content": "Write a long essay"}]


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    with InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1)) as served:
        yield served


def gather(*calls):
    async def run():
        return await asyncio.gather(*calls)

    return asyncio.run(run())


def generate_calls_during(backend, action):
    before = len(backend.batch_sizes)
    result = action()
    return result, backend.batch_sizes[before:]


def test_backend_satisfies_the_text_backend_protocol(backend):
    backend_view: TextBackend = backend
    assert backend_view.apply_chat_template(CHAT).endswith("<|im_start|>assistant\n")


def test_concurrent_requests_share_one_generate_call(backend):
    _, calls = generate_calls_during(backend, lambda: gather(*(backend.complete(p, GREEDY) for p in PROMPTS)))
    assert calls == [3]


def test_requests_with_different_sampling_are_not_batched_together(backend):
    other = SamplingConfig(max_tokens=5, repetition_penalty=2.0)
    _, calls = generate_calls_during(backend, lambda: gather(backend.complete(PROMPTS[0], GREEDY), backend.complete(PROMPTS[1], other)))
    assert calls == [1, 1]


def test_max_batch_size_splits_a_crowd(tiny_model_dir):
    with InProcessBackend(InProcessConfig(tiny_model_dir, max_batch_size=2, torch_threads=1)) as small:
        gather(*(small.complete(p, GREEDY) for p in PROMPTS))
        assert small.batch_sizes == [2, 1]


def test_greedy_batched_with_padding_equals_one_at_a_time(backend):
    batched = gather(*(backend.complete(p, GREEDY) for p in PROMPTS))
    alone = [gather(backend.complete(p, GREEDY))[0] for p in PROMPTS]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert [c.prompt_tokens for c in batched] == [c.prompt_tokens for c in alone]


def test_greedy_repeats_itself(backend):
    first, second = gather(backend.chat(CHAT, GREEDY), backend.chat(CHAT, GREEDY))
    assert first.text == second.text


def test_sampling_gives_different_answers_to_the_same_prompt(backend):
    first, second = gather(backend.chat(CHAT, SAMPLED), backend.chat(CHAT, SAMPLED))
    assert first.text != second.text


def test_sampling_with_top_k_one_is_greedy(backend):
    greedy = SamplingConfig(max_tokens=12)
    top_one = SamplingConfig(temperature=0.7, top_k=1, top_p=0.8, max_tokens=12)
    assert gather(backend.chat(CHAT, top_one))[0].text == gather(backend.chat(CHAT, greedy))[0].text


def test_max_tokens_bounds_the_answer_and_reports_length(backend):
    (completion,) = gather(backend.complete(PROMPTS[0], SamplingConfig(max_tokens=4, repetition_penalty=2.0)))
    assert completion.completion_tokens == 4
    assert completion.finish_reason == "length"


def test_stop_string_truncates_and_halts_generation(backend):
    (full,) = gather(backend.complete(PROMPTS[1], SamplingConfig(max_tokens=30, repetition_penalty=2.0)))
    stop = full.text[2:4]
    expected = full.text[: full.text.find(stop)]
    (stopped,) = gather(backend.complete(PROMPTS[1], SamplingConfig(max_tokens=30, repetition_penalty=2.0, stop=[stop])))
    assert stopped.text == expected
    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens < 30


def test_chat_equals_complete_on_the_templated_prompt(backend):
    chat, raw = gather(backend.chat(CHAT, GREEDY), backend.complete(backend.apply_chat_template(CHAT), GREEDY))
    assert chat == raw


def test_prompt_tokens_count_the_prompt_without_added_specials(backend):
    (completion,) = gather(backend.complete(PROMPTS[0], GREEDY))
    assert completion.prompt_tokens == len(backend.tokenizer(PROMPTS[0], add_special_tokens=False)["input_ids"])


def test_bos_is_added_once_for_a_tokenizer_that_expects_it(tiny_model_dir, tmp_path):
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    model_dir = tmp_path / "bos-model"
    shutil.copytree(tiny_model_dir, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    tokenizer.save_pretrained(model_dir)
    plain = len(tokenizer("The quick brown", add_special_tokens=False)["input_ids"])
    with InProcessBackend(InProcessConfig(model_dir, torch_threads=1)) as with_bos:
        without, already = gather(
            with_bos.complete("The quick brown", GREEDY), with_bos.complete(f"{bos}The quick brown", GREEDY)
        )
    assert without.prompt_tokens == plain + 1
    assert already.prompt_tokens == plain + 1


def test_completion_cuts_at_eos_and_counts_it(backend):
    eos, pad = backend.tokenizer.eos_token_id, backend.tokenizer.pad_token_id
    word = backend.tokenizer("The", add_special_tokens=False)["input_ids"]
    completion = completion_from_tokens(word + [eos, pad, pad], 7, GREEDY, backend.tokenizer, {eos})
    assert (completion.text, completion.finish_reason) == ("The", "stop")
    assert (completion.prompt_tokens, completion.completion_tokens) == (7, len(word) + 1)


def test_completion_without_eos_drops_trailing_padding(backend):
    pad = backend.tokenizer.pad_token_id
    word = backend.tokenizer("The", add_special_tokens=False)["input_ids"]
    completion = completion_from_tokens(word + [pad, pad], 3, GREEDY, backend.tokenizer, {backend.tokenizer.eos_token_id})
    assert (completion.text, completion.finish_reason, completion.completion_tokens) == ("The", "length", len(word))


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(0.7, 20, 0.8), (1.0, 5, 1.0), (1.3, 50, 0.3), (0.7, 1, 0.9)])
def test_fused_top_k_top_p_keeps_what_transformers_warpers_keep(temperature, top_k, top_p):
    import torch
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    generator = torch.Generator().manual_seed(top_k)
    scores = torch.randn(4, 1000, generator=generator) * 3
    expected = scores.clone()
    for warper in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(top_p)):
        expected = warper(None, expected)
    fused = FusedTopKTopP(temperature, top_k, top_p)(None, scores.clone())
    kept = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(fused), kept)
    assert torch.allclose(fused[kept], expected[kept])


def test_truncate_at_stop_uses_the_earliest_stop_string():
    assert truncate_at_stop("one. two! three", ["!", "."]) == ("one", True)
    assert truncate_at_stop("no stop here", ["###"]) == ("no stop here", False)
    assert truncate_at_stop("empty stop ignored", [""]) == ("empty stop ignored", False)


def test_a_failing_generate_reaches_the_caller_and_the_worker_survives(backend, monkeypatch):
    def broken_generate(**kwargs):
        raise RuntimeError("injected generate failure")

    monkeypatch.setattr(backend.model, "generate", broken_generate)
    with pytest.raises(RuntimeError, match="injected generate failure"):
        gather(backend.complete(PROMPTS[0], GREEDY))
    monkeypatch.undo()
    (completion,) = gather(backend.complete(PROMPTS[0], GREEDY))
    assert completion.completion_tokens > 0


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model path .*missing does not exist"):
        InProcessBackend(InProcessConfig(tmp_path / "missing"))


def test_closed_backend_stops_its_worker_and_refuses_requests(tiny_model_dir):
    with InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1)) as closing:
        pass
    assert not closing._worker.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        gather(closing.complete(PROMPTS[0], GREEDY))


@pytest.mark.slow
def test_adapter_is_merged_at_load(tiny_model_dir, tmp_path):
    import json

    from selflengthen.training import TrainConfig, train_role

    data = tmp_path / "train.jsonl"
    answer = {"role": "assistant", "content": "The quick brown fox jumps over the lazy dog."}
    data.write_text(json.dumps({"messages": [CHAT[0], answer]}) + "\n")
    adapter = train_role(data, tiny_model_dir, tmp_path / "adapter", TrainConfig(max_steps=3, learning_rate=0.5, torch_threads=1))
    with InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1)) as base, InProcessBackend(
        InProcessConfig(tiny_model_dir, adapter=adapter, torch_threads=1)
    ) as tuned:
        assert gather(base.chat(CHAT, GREEDY))[0].text != gather(tuned.chat(CHAT, GREEDY))[0].text
