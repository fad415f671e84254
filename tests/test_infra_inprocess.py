"""The in-process batched backend: real generate calls on the tiny model."""

from __future__ import annotations

import asyncio
import math
import shutil
import time

import pytest

from infra.backend import TextBackend, truncate_at_stop
from infra.inprocess import InProcessBackend, InProcessConfig, _token_bounded_groups, completion_from_tokens
from infra.sampler import warp_top_k_top_p
from infra.sampling import SamplingConfig
from tests.schemas import JUDGE_SCHEMA, follows_judge_schema

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


async def until(condition, timeout_s: float = 60.0) -> None:
    """Poll `condition` until it holds; fail the test instead of hanging when it never does."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s:.0f}s"
        await asyncio.sleep(0.001)


def prefills_during(backend, action):
    before = len(backend.stats.prefill_sizes)
    result = action()
    return result, backend.stats.prefill_sizes[before:]


def alone(backend, prompt, sampling):
    return gather(backend.complete(prompt, sampling))[0]


def test_backend_satisfies_the_text_backend_protocol(backend):
    backend_view: TextBackend = backend
    assert backend_view.apply_chat_template(CHAT).endswith("<|im_start|>assistant\n")


def test_concurrent_requests_share_one_prefill(backend):
    _, prefills = prefills_during(backend, lambda: gather(*(backend.complete(p, GREEDY) for p in PROMPTS)))
    assert prefills == [3]


def test_requests_with_different_sampling_decode_in_one_batch(backend):
    shorter = SamplingConfig(max_tokens=5, repetition_penalty=1.3)
    (long, short, sampled), prefills = prefills_during(backend, lambda: gather(
        backend.complete(PROMPTS[0], GREEDY), backend.complete(PROMPTS[1], shorter), backend.complete(PROMPTS[2], SAMPLED)))
    assert prefills == [3]
    assert long == alone(backend, PROMPTS[0], GREEDY)
    assert short == alone(backend, PROMPTS[1], shorter)
    assert sampled.completion_tokens > 0


def test_max_batch_size_splits_a_crowd(tiny_model_dir):
    with InProcessBackend(InProcessConfig(tiny_model_dir, max_batch_size=2, torch_threads=1)) as small:
        gather(*(small.complete(p, GREEDY) for p in PROMPTS))
        assert small.stats.prefill_sizes == [2, 1]
        assert small.stats.rows_decoded <= 2 * small.stats.decode_steps


def test_arrivals_with_the_same_prompt_are_prefilled_once_and_decode_as_if_alone(backend):
    shared, other = PROMPTS[1], PROMPTS[0]
    prompt_tokens = {p: len(backend.tokenizer(p)["input_ids"]) for p in (shared, other)}
    before = backend.stats.prefill_tokens
    results, prefills = prefills_during(backend, lambda: gather(
        backend.complete(shared, GREEDY), backend.complete(other, GREEDY), backend.complete(shared, GREEDY),
        backend.complete(shared, SAMPLED)))
    assert prefills == [4]
    assert backend.stats.prefill_tokens - before == prompt_tokens[shared] + prompt_tokens[other]
    assert results[0] == results[2] == alone(backend, shared, GREEDY)
    assert results[1] == alone(backend, other, GREEDY)
    assert results[3].completion_tokens > 0


def test_prompts_are_grouped_consecutively_within_the_prefill_token_budget():
    assert _token_bounded_groups([3, 4, 5, 2], 7) == [[0, 1], [2, 3]]
    assert _token_bounded_groups([10, 2, 2], 5) == [[0], [1, 2]]  # a prompt over the budget goes alone
    assert _token_bounded_groups([], 5) == []


def test_a_crowd_over_the_prefill_token_budget_is_prefilled_in_groups_and_answers_as_if_alone(backend, monkeypatch):
    """One prefill call holds at most PREFILL_TOKENS prompt tokens (8,192: real prompts rarely reach it, so the
    budget is lowered here); the arrivals beyond it are prefilled by further calls in the same admission."""
    import infra.inprocess

    lengths = [len(backend.tokenizer(p)["input_ids"]) for p in PROMPTS]
    monkeypatch.setattr(infra.inprocess, "PREFILL_TOKENS", max(lengths))
    calls, forward = [], backend.decoder.forward
    monkeypatch.setattr(backend.decoder, "forward",
                        lambda rows, prefill: (calls.append(len(rows)) if prefill else None) or forward(rows, prefill))
    results, prefills = prefills_during(backend, lambda: gather(*(backend.complete(p, GREEDY) for p in PROMPTS)))
    monkeypatch.undo()
    assert prefills == [3]
    assert calls == [len(group) for group in _token_bounded_groups(lengths, max(lengths))] and len(calls) > 1
    assert results == [alone(backend, p, GREEDY) for p in PROMPTS]


def test_greedy_batched_with_padding_equals_one_at_a_time(backend):
    batched = gather(*(backend.complete(p, GREEDY) for p in PROMPTS))
    one_by_one = [alone(backend, p, GREEDY) for p in PROMPTS]
    assert batched == one_by_one


def test_a_request_joins_a_running_batch_and_decodes_as_it_would_alone(backend):
    long = SamplingConfig(max_tokens=40, repetition_penalty=2.0)
    short = SamplingConfig(max_tokens=3, repetition_penalty=2.0)
    finished: list[str] = []

    async def run():
        async def request(name, prompt, sampling, delay):
            await asyncio.sleep(delay)
            completion = await backend.complete(prompt, sampling)
            finished.append(name)
            return completion

        first = asyncio.create_task(request("long", PROMPTS[1], long, 0))
        await until(lambda: backend.stats.decode_steps > steps_before)  # the long request is decoding
        return await asyncio.gather(first, request("short", PROMPTS[2], short, 0))

    steps_before = backend.stats.decode_steps
    (long_done, short_done), prefills = prefills_during(backend, lambda: asyncio.run(run()))
    assert prefills == [1, 1]
    assert finished == ["short", "long"]
    assert long_done == alone(backend, PROMPTS[1], long)
    assert short_done == alone(backend, PROMPTS[2], short)


def test_greedy_decoding_matches_transformers_generate(backend):
    for prompt in PROMPTS:
        ids = backend.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        output = backend.model.generate(**ids, max_new_tokens=GREEDY.max_tokens, do_sample=False,
                                        repetition_penalty=GREEDY.repetition_penalty,
                                        pad_token_id=backend.tokenizer.pad_token_id)
        expected = backend.tokenizer.decode(output[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        assert alone(backend, prompt, GREEDY).text == expected


def test_a_seeded_request_samples_the_same_text_again(backend):
    seeded = SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=12, seed=7)
    first, _, second = gather(backend.chat(CHAT, seeded), backend.chat(CHAT, SAMPLED), backend.chat(CHAT, seeded))
    assert first.text == second.text


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


def test_completion_without_eos_ended_by_length(backend):
    word = backend.tokenizer("The", add_special_tokens=False)["input_ids"]
    completion = completion_from_tokens(word, 3, GREEDY, backend.tokenizer, {backend.tokenizer.eos_token_id})
    assert (completion.text, completion.finish_reason, completion.completion_tokens) == ("The", "length", len(word))


def test_per_row_top_k_top_p_keeps_what_transformers_warpers_keep():
    import torch
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    settings = [(0.7, 20, 0.8), (1.0, 5, 1.0), (1.3, 50, 0.3), (0.7, 1, 0.9)]  # (temperature, top_k, top_p) per row
    scores = torch.randn(len(settings), 1000, generator=torch.Generator().manual_seed(0)) * 3
    values, token_ids = warp_top_k_top_p(scores, torch.tensor([t for t, _, _ in settings]), [k for _, k, _ in settings],
                                         torch.tensor([p for _, _, p in settings]))
    for row, (temperature, top_k, top_p) in enumerate(settings):
        expected = scores[row : row + 1].clone()
        for warper in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(top_p)):
            expected = warper(None, expected)
        expected = expected[0]
        kept = torch.isfinite(values[row])
        assert set(token_ids[row][kept].tolist()) == set(torch.isfinite(expected).nonzero().flatten().tolist())
        assert torch.allclose(values[row][kept], expected[token_ids[row][kept]])


def test_truncate_at_stop_uses_the_earliest_stop_string():
    assert truncate_at_stop("one. two! three", ["!", "."]) == ("one", True)
    assert truncate_at_stop("no stop here", ["###"]) == ("no stop here", False)
    assert truncate_at_stop("empty stop ignored", [""]) == ("empty stop ignored", False)


def test_a_failing_forward_reaches_the_caller_and_the_worker_survives(backend, monkeypatch):
    def broken_forward(*args, **kwargs):
        raise RuntimeError("injected forward failure")

    monkeypatch.setattr(backend.decoder, "forward", broken_forward)
    with pytest.raises(RuntimeError, match="injected forward failure"):
        gather(backend.complete(PROMPTS[0], GREEDY))
    monkeypatch.undo()
    (completion,) = gather(backend.complete(PROMPTS[0], GREEDY))
    assert completion.completion_tokens > 0


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model path .*missing does not exist"):
        InProcessBackend(InProcessConfig(tmp_path / "missing"))


def test_lanes_split_the_batch_and_each_seeded_answer_is_the_text_one_lane_writes(tiny_model_dir):
    """Two lanes hold two rows each of a batch of four: no prefill admits more than two of six arrivals,
    and every seeded answer (with a neighbour greedy, one cut by a stop string) is the one-lane text."""
    requests = [(prompt, SamplingConfig(temperature=1.0, max_tokens=16, seed=seed))
                for seed, prompt in enumerate(PROMPTS * 2)]
    requests[1] = (PROMPTS[1], GREEDY)
    requests[4] = (PROMPTS[1], SamplingConfig(temperature=1.0, max_tokens=16, seed=4, stop=["e"]))

    def answers(engine) -> list[str]:
        return [reply.text for reply in gather(*(engine.complete(p, s) for p, s in requests))]

    with InProcessBackend(InProcessConfig(tiny_model_dir, max_batch_size=4, torch_threads=1)) as one_lane:
        expected = answers(one_lane)
    with InProcessBackend(InProcessConfig(tiny_model_dir, max_batch_size=4, torch_threads=1, lanes=2)) as two_lanes:
        assert answers(two_lanes) == expected
        assert two_lanes.describe_lanes() == "2 decode lanes (2 + 2 rows), 1 torch thread each"
        assert max(two_lanes.stats.prefill_sizes) <= 2
        assert sum(two_lanes.stats.prefill_sizes) == len(requests)
    assert len(set(expected)) > 2


def test_lanes_must_be_a_whole_number_of_at_least_one(tiny_model_dir):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="lanes must be a whole number of at least 1"):
            InProcessConfig(tiny_model_dir, lanes=bad)


def test_closed_backend_stops_its_workers_and_refuses_requests(tiny_model_dir):
    with InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1, lanes=2)) as closing:
        pass
    assert len(closing._workers) == 2 and not any(worker.is_alive() for worker in closing._workers)
    with pytest.raises(RuntimeError, match="closed"):
        gather(closing.complete(PROMPTS[0], GREEDY))


def test_closing_mid_decode_fails_the_requests_in_flight_without_finishing_them(tiny_model_dir):
    endless = SamplingConfig(max_tokens=100_000, repetition_penalty=2.0)  # greedy: never meets EOS on this prompt
    backend = InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1, max_batch_size=2, lanes=2))

    async def run():
        requests = [asyncio.create_task(backend.complete(PROMPTS[0], endless)) for _ in range(2)]
        await until(lambda: backend.stats.decode_steps >= 6)
        await asyncio.to_thread(backend.close)
        return await asyncio.gather(*requests, return_exceptions=True)

    outcomes = asyncio.run(run())  # one request in each lane: both lanes full, neither looks at the queue
    assert all(isinstance(outcome, RuntimeError) and "closed" in str(outcome) for outcome in outcomes), outcomes
    assert backend.stats.decode_steps < 1000


@pytest.mark.slow
def test_adapter_is_merged_at_load(tiny_model_dir, tmp_path):
    import json

    from selflengthen.lora import TrainConfig, train_role

    data = tmp_path / "train.jsonl"
    answer = {"role": "assistant", "content": "The quick brown fox jumps over the lazy dog."}
    data.write_text(json.dumps({"messages": [CHAT[0], answer]}) + "\n")
    adapter = train_role(data, tiny_model_dir, tmp_path / "adapter", TrainConfig(max_steps=3, learning_rate=0.5, torch_threads=1))
    with InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1)) as base, InProcessBackend(
        InProcessConfig(tiny_model_dir, adapter=adapter, torch_threads=1)
    ) as tuned:
        assert gather(base.chat(CHAT, GREEDY))[0].text != gather(tuned.chat(CHAT, GREEDY))[0].text


# -- structured output and logprobs ------------------------------------------------------------

JUDGED = SamplingConfig(temperature=1.0, max_tokens=300, json_schema=JUDGE_SCHEMA)


def probability_mass(entry) -> float:
    return sum(math.exp(value) for value in entry.top.values())


def test_backend_declares_json_schema_and_top_logprobs(backend):
    assert backend.features == {"json_schema", "top_logprobs"}


def test_sampled_replies_under_a_json_schema_follow_it(backend):
    replies = gather(*(backend.chat(CHAT, JUDGED) for _ in range(20)))
    assert [r.text for r in replies if not follows_judge_schema(r.text)] == []
    assert {r.finish_reason for r in replies} == {"stop"}
    assert len({r.text for r in replies}) > 1


def test_a_constrained_row_leaves_its_unconstrained_neighbour_unchanged(backend):
    free, constrained = gather(backend.complete(PROMPTS[0], GREEDY), backend.complete(PROMPTS[0], JUDGED))
    assert follows_judge_schema(constrained.text)
    assert free == alone(backend, PROMPTS[0], GREEDY)


def test_an_unusable_json_schema_is_refused_naming_the_field(backend):
    with pytest.raises(ValueError, match="json_schema"):
        alone(backend, PROMPTS[0], SamplingConfig(json_schema={"type": "no-such-type"}))


def test_a_negative_top_logprobs_is_refused_naming_the_field(backend):
    with pytest.raises(ValueError, match="top_logprobs"):
        alone(backend, PROMPTS[0], SamplingConfig(top_logprobs=-1))


def test_greedy_top_logprobs_over_the_whole_vocabulary_sum_to_one(backend):
    completion = alone(backend, PROMPTS[1], SamplingConfig(max_tokens=6, top_logprobs=len(backend.tokenizer)))
    assert len(completion.logprobs) == completion.completion_tokens
    for entry in completion.logprobs:
        assert probability_mass(entry) == pytest.approx(1.0, abs=1e-4)
        assert entry.top[entry.token] >= entry.logprob - 1e-6  # more when byte pieces share its text


def test_sampled_top_logprobs_cover_the_top_k_distribution_the_token_was_drawn_from(backend):
    sampled = SamplingConfig(temperature=1.0, top_k=5, max_tokens=8, top_logprobs=5, seed=3)
    for entry in alone(backend, PROMPTS[2], sampled).logprobs:
        assert probability_mass(entry) == pytest.approx(1.0, abs=1e-4)
        assert entry.top[entry.token] >= entry.logprob - 1e-6


def test_top_logprobs_are_taken_after_temperature(backend):
    vocabulary = len(backend.tokenizer)
    greedy = alone(backend, PROMPTS[0], SamplingConfig(max_tokens=1, top_logprobs=vocabulary)).logprobs[0].top
    hot = alone(backend, PROMPTS[0], SamplingConfig(temperature=0.5, top_k=vocabulary, max_tokens=1,
                                                    top_logprobs=vocabulary)).logprobs[0].top
    whole_tokens = [text for text in greedy if "\ufffd" not in text]  # byte pieces share an entry
    first, second = sorted(whole_tokens, key=greedy.get, reverse=True)[:2]
    assert hot[first] - hot[second] == pytest.approx((greedy[first] - greedy[second]) / 0.5, abs=1e-3)


def test_constrained_top_logprobs_list_only_tokens_the_schema_allows(backend):
    completion = alone(backend, PROMPTS[0], SamplingConfig(max_tokens=300, json_schema=JUDGE_SCHEMA, top_logprobs=20))
    assert completion.logprobs[0].top == {"{": 0.0}
    assert all(probability_mass(entry) <= 1.0 + 1e-4 for entry in completion.logprobs)


def test_a_cancelled_request_leaves_the_batch_and_a_cancelled_queued_one_is_never_prefilled(tiny_model_dir):
    endless = SamplingConfig(max_tokens=100_000, repetition_penalty=2.0)  # greedy: never meets EOS on this prompt
    with InProcessBackend(InProcessConfig(tiny_model_dir, max_batch_size=1, torch_threads=1)) as engine:
        async def run():
            running = asyncio.create_task(engine.complete(PROMPTS[0], endless))
            await until(lambda: engine.stats.decode_steps >= 3)
            queued = asyncio.create_task(engine.complete(PROMPTS[1], endless))  # no free row: it waits
            await asyncio.sleep(0.05)
            queued.cancel()
            running.cancel()
            await asyncio.gather(running, queued, return_exceptions=True)
            await until(lambda: engine.stats.cancelled == 2)
            steps = engine.stats.decode_steps
            await asyncio.sleep(0.2)
            return steps

        steps = asyncio.run(run())
        assert engine.stats.decode_steps == steps < 100_000  # nothing decodes for nobody
        assert engine.stats.prefill_sizes == [1]  # the queued request was dropped before its prefill
        (after,) = gather(engine.complete(PROMPTS[2], GREEDY))
        assert after == alone(engine, PROMPTS[2], GREEDY)


def test_a_hub_id_in_the_hugging_face_cache_loads_from_its_snapshot_without_the_network(tiny_model_dir, tmp_path,
                                                                                       monkeypatch):
    snapshot = tmp_path / "hub" / "models--someone--tiny-chat" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_model_dir, snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with InProcessBackend(InProcessConfig("someone/tiny-chat", torch_threads=1)) as engine:
        (completion,) = gather(engine.complete(PROMPTS[0], GREEDY))
    assert completion.completion_tokens > 0
    with pytest.raises(FileNotFoundError, match="no Hub model of that id is in the Hugging Face cache"):
        InProcessBackend(InProcessConfig("someone/not-cached", torch_threads=1))
