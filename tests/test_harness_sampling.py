"""Sampling parameters travel differently per server kind; one function maps them."""

import json

from harness.client import sampling_request
from infra.sampling import SamplingConfig

REFERENCE = SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1, max_tokens=64, stop=["\n\n"])


def test_transformers_gets_do_sample_top_k_and_penalty_inside_generation_config():
    fields = sampling_request(REFERENCE, "transformers", {"eos_token_id": 2})
    generation = json.loads(fields["extra_body"]["generation_config"])
    assert generation == {
        "eos_token_id": 2,
        "do_sample": True,
        "max_new_tokens": 64,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "repetition_penalty": 1.1,
    }
    assert "top_k" not in fields and "repetition_penalty" not in fields
    assert fields["temperature"] == 0.7 and fields["stop"] == ["\n\n"]


def test_transformers_greedy_turns_sampling_off():
    generation = json.loads(sampling_request(SamplingConfig(), "transformers")["extra_body"]["generation_config"])
    assert generation["do_sample"] is False and "top_k" not in generation


def test_vllm_gets_top_k_and_penalty_as_extra_body_fields():
    fields = sampling_request(REFERENCE, "vllm")
    assert fields["extra_body"] == {"top_k": 20, "repetition_penalty": 1.1}
    assert fields["top_p"] == 0.8


def test_plain_openai_servers_get_standard_fields_only():
    fields = sampling_request(REFERENCE, "openai")
    assert "extra_body" not in fields
    assert set(fields) == {"temperature", "max_tokens", "top_p", "stop"}


def test_stop_strings_are_cut_from_replies_on_the_client_side():
    from harness.client import _completion

    completion = _completion("one two. three", "length", None, ["."])
    assert (completion.text, completion.finish_reason) == ("one two", "stop")
    assert _completion("no stop here", "length", None, ["###"]).finish_reason == "length"
