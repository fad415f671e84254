"""The scripted test backend keeps the TextBackend contract the code under test relies on."""

import asyncio

import pytest

from infra.backend import Completion, TokenLogprob, Unsupported
from infra.sampling import SamplingConfig
from tests.fakes import ScriptedBackend, replies_by_kind


def test_a_field_outside_the_features_is_refused_naming_it():
    backend = ScriptedBackend("{}")
    with pytest.raises(Unsupported, match="json_schema"):
        asyncio.run(backend.chat([{"role": "user", "content": "x"}], SamplingConfig(json_schema={"type": "object"})))
    assert backend.calls == 0


def test_a_listed_feature_is_served():
    backend = ScriptedBackend("{}", features={"json_schema"})
    sampling = SamplingConfig(json_schema={"type": "object"})
    assert asyncio.run(backend.chat([{"role": "user", "content": "x"}], sampling)).text == "{}"


def test_a_text_reply_comes_back_as_a_stopped_completion():
    completion = asyncio.run(ScriptedBackend("done").chat([{"role": "user", "content": "x"}], SamplingConfig()))
    assert (completion.text, completion.finish_reason, completion.logprobs) == ("done", "stop", None)


def test_a_scripted_completion_comes_back_as_is_with_its_logprobs():
    scripted = Completion("4", "length", logprobs=[TokenLogprob("4", -0.1, {"4": -0.1, "5": -2.3})])
    backend = ScriptedBackend(script=lambda shown, sampling, n: scripted, features={"top_logprobs"})
    assert asyncio.run(backend.chat([{"role": "user", "content": "x"}], SamplingConfig(top_logprobs=2))) is scripted


def test_a_script_can_be_shown_the_whole_chat_and_the_call_number():
    messages = [{"role": "system", "content": "judge"}, {"role": "user", "content": "rate"}]
    backend = ScriptedBackend(script=lambda shown, sampling, n: f"{len(shown)} messages, call {n}", script_gets="messages")
    assert asyncio.run(backend.chat(messages, SamplingConfig())).text == "2 messages, call 1"
    assert backend.sent[0].prompt == messages and backend.sent[0].text == "rate"


def test_replies_by_kind_go_through_a_kinds_list_then_repeat_its_last():
    script = replies_by_kind({"plan": ("PLAN:",), "rating": ("RATE:",)}, {"plan": ["a", "b"], "rating": "5"})
    replies = [script(text, SamplingConfig(), 0) for text in ("PLAN: x", "RATE: y", "PLAN: x", "PLAN: x")]
    assert replies == ["a", "5", "b", "b"]
