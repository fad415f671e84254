"""Sampling parameters travel differently per server kind; one function maps them."""

import json

import pytest

from harness.client import sampling_request
from harness.errors import UserError
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
    standard = SamplingConfig(temperature=0.7, top_p=0.8, max_tokens=64, stop=["\n\n"], seed=3)
    fields = sampling_request(standard, "openai")
    assert "extra_body" not in fields
    assert set(fields) == {"temperature", "max_tokens", "top_p", "stop", "seed"}


def test_plain_openai_servers_refuse_top_k_instead_of_dropping_it():
    with pytest.raises(UserError, match=r"sampling\.top_k cannot be honoured"):
        sampling_request(REFERENCE, "openai")


def test_stop_strings_are_cut_from_replies_on_the_client_side():
    from harness.client import _completion

    completion = _completion("one two. three", "length", None, ["."])
    assert (completion.text, completion.finish_reason) == ("one two", "stop")
    assert _completion("no stop here", "length", None, ["###"]).finish_reason == "length"


LM_EVAL = SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1, stop=["\n\n"], seed=5)


def test_lm_eval_vllm_gen_kwargs_keep_every_sampling_field():
    from harness.client import lm_eval_gen_kwargs

    assert lm_eval_gen_kwargs(LM_EVAL, "vllm") == {
        "do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "seed": 5,
        "repetition_penalty": 1.1, "until": ["\n\n"],
    }


def test_lm_eval_hf_gen_kwargs_keep_top_k_penalty_and_stop():
    from harness.client import lm_eval_gen_kwargs

    unseeded = SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1, stop=["\n\n"])
    assert lm_eval_gen_kwargs(unseeded, "hf") == {
        "do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.1, "until": ["\n\n"],
    }


@pytest.mark.parametrize(("backend", "field"), [
    ("hf", "seed"),
    ("endpoint-transformers-cb", "stop"),
    ("endpoint-openai", "top_k"),
])
def test_lm_eval_gen_kwargs_refuse_what_the_backend_cannot_honour(backend, field):
    from harness.client import lm_eval_gen_kwargs

    with pytest.raises(UserError, match=rf"eval\.sampling\.{field} cannot be honoured"):
        lm_eval_gen_kwargs(LM_EVAL, backend)


def test_lm_eval_refuses_sampling_max_tokens_because_max_gen_toks_sets_answer_length():
    from harness.client import lm_eval_gen_kwargs

    with pytest.raises(UserError, match=r"eval\.sampling\.max_tokens"):
        lm_eval_gen_kwargs(SamplingConfig(max_tokens=64), "vllm")


def test_lm_eval_endpoint_gen_kwargs_carry_transformers_generation_config():
    from harness.client import lm_eval_gen_kwargs

    kwargs = lm_eval_gen_kwargs(SamplingConfig(temperature=0.7, top_k=20, seed=1), "endpoint-transformers-cb")
    assert json.loads(kwargs["generation_config"])["top_k"] == 20 and kwargs["seed"] == 1
