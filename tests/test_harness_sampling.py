"""Sampling parameters travel differently per server kind; one function maps them."""

import json
import math

import pytest

from harness.serving.client import sampling_request
from harness.errors import UserError
from infra.backend import Unsupported
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
    from harness.serving.client import _completion

    completion = _completion("one two. three", "length", None, ["."])
    assert (completion.text, completion.finish_reason) == ("one two", "stop")
    assert _completion("no stop here", "length", None, ["###"]).finish_reason == "length"


LM_EVAL = SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1, stop=["\n\n"], seed=5)


def test_lm_eval_vllm_gen_kwargs_keep_every_sampling_field():
    from harness.serving.client import lm_eval_gen_kwargs

    assert lm_eval_gen_kwargs(LM_EVAL, "vllm") == {
        "do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "seed": 5,
        "repetition_penalty": 1.1, "until": ["\n\n"],
    }


def test_lm_eval_hf_gen_kwargs_keep_top_k_penalty_and_stop():
    from harness.serving.client import lm_eval_gen_kwargs

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
    from harness.serving.client import lm_eval_gen_kwargs

    with pytest.raises(UserError, match=rf"eval\.sampling\.{field} cannot be honoured"):
        lm_eval_gen_kwargs(LM_EVAL, backend)


def test_lm_eval_refuses_sampling_max_tokens_because_max_gen_toks_sets_answer_length():
    from harness.serving.client import lm_eval_gen_kwargs

    with pytest.raises(UserError, match=r"eval\.sampling\.max_tokens"):
        lm_eval_gen_kwargs(SamplingConfig(max_tokens=64), "vllm")


def test_lm_eval_endpoint_gen_kwargs_carry_transformers_generation_config():
    from harness.serving.client import lm_eval_gen_kwargs

    kwargs = lm_eval_gen_kwargs(SamplingConfig(temperature=0.7, top_k=20, seed=1), "endpoint-transformers-cb")
    assert json.loads(kwargs["generation_config"])["top_k"] == 20 and kwargs["seed"] == 1
# -- structured output and logprobs per server kind ----------------------------------------------

SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
STRUCTURED = SamplingConfig(max_tokens=64, json_schema=SCHEMA, top_logprobs=3)


def test_inprocess_gets_a_json_schema_response_format_and_chat_logprobs():
    fields = sampling_request(STRUCTURED, "inprocess")
    assert fields["response_format"] == {"type": "json_schema",
                                         "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True}}
    assert (fields["logprobs"], fields["top_logprobs"]) == (True, 3)


def test_raw_completions_ask_for_logprobs_as_a_count():
    fields = sampling_request(STRUCTURED, "inprocess", api="completions")
    assert fields["logprobs"] == 3 and "top_logprobs" not in fields


def test_vllm_gets_the_json_schema_as_structured_outputs():
    fields = sampling_request(STRUCTURED, "vllm")
    assert fields["extra_body"] == {"structured_outputs": {"json": SCHEMA}}
    assert "response_format" not in fields and fields["top_logprobs"] == 3


def test_inprocess_gets_top_k_and_penalty_as_extra_body_fields():
    assert sampling_request(REFERENCE, "inprocess")["extra_body"] == {"top_k": 20, "repetition_penalty": 1.1}


def test_transformers_refuses_a_json_schema_naming_the_field():
    with pytest.raises(Unsupported, match=r"json_schema cannot be honoured"):
        sampling_request(SamplingConfig(json_schema=SCHEMA), "transformers")


def test_transformers_refuses_top_logprobs_naming_the_field():
    with pytest.raises(Unsupported, match=r"top_logprobs cannot be honoured"):
        sampling_request(SamplingConfig(top_logprobs=2), "transformers")


def test_client_features_follow_the_server_kind():
    from harness.serving.client import EndpointClient
    from harness.serving.serve import Endpoint

    features = {kind: EndpointClient(Endpoint("http://127.0.0.1:9/v1", "m", kind=kind)).features
                for kind in ("transformers", "vllm", "inprocess")}
    assert features == {"transformers": frozenset(), "vllm": {"json_schema", "top_logprobs"},
                        "inprocess": {"json_schema", "top_logprobs"}}


def test_chat_logprobs_become_token_logprobs_with_same_text_alternatives_merged():
    from openai.types.chat.chat_completion import ChoiceLogprobs

    from harness.serving.client import _chat_logprobs

    wire = ChoiceLogprobs.model_validate({"content": [{"token": "a", "logprob": -0.5, "bytes": None, "top_logprobs": [
        {"token": "a", "logprob": -0.5}, {"token": "\ufffd", "logprob": math.log(0.1)},
        {"token": "\ufffd", "logprob": math.log(0.2)}]}]})
    (entry,) = _chat_logprobs(wire, STRUCTURED)
    assert (entry.token, entry.logprob, entry.top["a"]) == ("a", -0.5, -0.5)
    assert entry.top["\ufffd"] == pytest.approx(math.log(0.3))


def test_completion_logprobs_parallel_lists_become_token_logprobs():
    from openai.types.completion_choice import Logprobs

    from harness.serving.client import _completion_logprobs

    wire = Logprobs(tokens=["x", "y"], token_logprobs=[-1.0, -2.0], top_logprobs=[{"x": -1.0}, {"y": -2.0, "z": -3.0}])
    parsed = _completion_logprobs(wire, STRUCTURED)
    assert [(e.token, e.logprob, e.top) for e in parsed] == [("x", -1.0, {"x": -1.0}), ("y", -2.0, {"y": -2.0, "z": -3.0})]


def test_a_reply_without_the_logprobs_asked_for_is_refused_holding_the_reply():
    from harness.serving.client import EndpointClient, _chat_logprobs
    from harness.serving.serve import Endpoint
    from infra.backend import Completion, MissingLogprobs

    reply = Completion("{}", logprobs=_chat_logprobs(None, STRUCTURED))
    client = EndpointClient(Endpoint("http://127.0.0.1:9/v1", "m", kind="openai"))
    with pytest.raises(MissingLogprobs, match="top_logprobs was asked for but http://127.0.0.1:9/v1") as refused:
        client._with_logprobs(reply, STRUCTURED)
    assert isinstance(refused.value, Unsupported) and refused.value.completion is reply


@pytest.mark.parametrize("server, refused", [("transformers", True), ("inprocess", False), ("vllm", False)])
def test_a_constrained_suitability_judge_needs_a_server_with_structured_output(server, refused):
    """Said before any work, naming the field: transformers serve would fail every suitability question."""
    from harness.config import from_dict
    from harness.run.train import TrainRunConfig, validate_training
    from selflengthen.config import SelfLengthenConfig

    cb = {"continuous_batching": False} if server == "transformers" else {}
    config = from_dict(TrainRunConfig, {"backend": {"kind": "endpoint", "server": {"kind": server, **cb}}})
    config.method = from_dict(SelfLengthenConfig, {"self_instruct": {"constrained_judge": True}})
    if not refused:
        validate_training(config)
        return
    with pytest.raises(UserError, match=r"^method\.self_instruct\.constrained_judge\.json_schema cannot be honoured: "
                                        r"transformers serve takes neither"):
        validate_training(config)


@pytest.mark.parametrize("installed, takes", [("5.23.0", True), ("5.24.0", True), ("5.25.0", False), ("6.0.0", False)])
def test_transformers_serve_takes_request_sampling_under_continuous_batching_only_before_5_25(
    monkeypatch, installed, takes
):
    import importlib.metadata

    from harness.serving.client import transformers_cb_takes_request_sampling

    monkeypatch.setattr(importlib.metadata, "version", lambda name: installed)
    assert transformers_cb_takes_request_sampling() is takes


def test_sampled_roles_are_refused_where_transformers_serve_would_decode_them_greedily(monkeypatch):
    """A transformers whose continuous batching drops a request's sampling is refused before any work,
    instead of a sampled role running greedily unnoticed; greedy roles and serving without it still run."""
    import harness.serving.client
    from harness.serving.client import refuse_unsupported

    monkeypatch.setattr(harness.serving.client, "transformers_cb_takes_request_sampling", lambda: False)
    with pytest.raises(UserError, match=r"^generator\.sampling\.temperature cannot be honoured: transformers \S+ "
                                        r"serve with continuous batching samples with the model's generation config"):
        refuse_unsupported(SamplingConfig(temperature=0.7), "endpoint-transformers-cb", "generator.sampling")
    refuse_unsupported(SamplingConfig(), "endpoint-transformers-cb", "generator.sampling")
    refuse_unsupported(SamplingConfig(temperature=0.7), "endpoint-transformers", "generator.sampling")
