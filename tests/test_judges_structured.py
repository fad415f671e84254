"""Structured replies (the rubric's JSON schema) and G-Eval probability-weighted scores from logprobs."""

from __future__ import annotations

import asyncio
import json

import pytest

from judges import JudgeConfig, JudgeError, judge_scores, load_rubric
from judges.weighting import weighted_scores
from infra.backend import Completion
from tests.fakes import ScriptedBackend
from tests.logprob_replies import json_tokens, tokens

LBW = load_rubric("longbench_write")
LONGEN = load_rubric("longen")
LBW_SCORES = {"Relevance": 4, "Accuracy": 3, "Coherence": 4, "Clarity": 5, "Breadth and Depth": 2, "Reading Experience": 3}
BOTH = frozenset({"json_schema", "top_logprobs"})


def one_sample() -> dict:
    return {"tasks": {"longbench_write_en_mini": {"samples": [{"doc_id": 0, "prompt": "p", "response": "r"}]}}}


def run(client, **fields) -> dict:
    return asyncio.run(judge_scores(one_sample(), client, JudgeConfig(model="j", **fields), progress=False))


def test_rubric_schema_requires_every_dimension_as_an_integer_of_the_scale():
    schema = LBW.json_schema()
    assert schema["required"] == list(LBW.dimensions) and schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(LBW.dimensions)
    assert all(p == {"type": "integer", "enum": [1, 2, 3, 4, 5]} for p in schema["properties"].values())
    assert LONGEN.json_schema()["properties"]["Clarity"]["enum"] == list(range(1, 11))


def test_schema_and_logprobs_are_requested_when_the_backend_honours_them():
    client = ScriptedBackend(json.dumps(LBW_SCORES), features=BOTH)
    result = run(client)
    assert client.sent[0].sampling.json_schema == LBW.json_schema() and client.sent[0].sampling.top_logprobs == 20
    assert result["judge"]["structured"] is True and result["judge"]["top_logprobs"] == 20


def test_plain_backends_get_plain_requests_and_the_tolerant_parser():
    client = ScriptedBackend("Scores: " + json.dumps(LBW_SCORES) + " thanks")
    result = run(client)
    assert client.sent[0].sampling.json_schema is None and client.sent[0].sampling.top_logprobs is None
    assert result["tasks"]["longbench_write_en_mini"]["samples"][0]["argmax_scores"]["Clarity"] == 5.0


def test_structured_never_and_top_logprobs_zero_turn_both_off():
    client = ScriptedBackend(json.dumps(LBW_SCORES), features=BOTH)
    run(client, structured="never", top_logprobs=0)
    assert client.sent[0].sampling.json_schema is None and client.sent[0].sampling.top_logprobs is None


def test_structured_always_refuses_a_backend_without_json_schema_before_any_call():
    client = ScriptedBackend(json.dumps(LBW_SCORES), features=frozenset({"top_logprobs"}))
    with pytest.raises(JudgeError, match="structured is 'always' but the judge backend does not support json_schema"):
        run(client, structured="always")
    assert client.calls == 0


def test_structured_and_plain_replies_are_cached_apart(tmp_path):
    cache = str(tmp_path / "c.sqlite")
    run(ScriptedBackend(json.dumps(LBW_SCORES)), cache_path=cache)
    structured = ScriptedBackend(json.dumps(LBW_SCORES), features=BOTH)
    run(structured, cache_path=cache)
    assert structured.calls == 1


def test_g_eval_score_is_the_probability_weighted_mean_over_scale_values():
    # Relevance's token " 4": p(" 4") = .5, p(" 3") = .3, p(" 5") = .1, p(" Good") = .1 (not a scale value).
    # Renormalised over 3, 4, 5: (.3·3 + .5·4 + .1·5) / .9 = 3.4 / .9.
    reply = json_tokens(LBW_SCORES, {"Relevance": {" 4": 0.5, " 3": 0.3, " 5": 0.1, " Good": 0.1}})
    text = "".join(t.token for t in reply)
    client = ScriptedBackend(Completion(text, "stop", logprobs=reply), features=BOTH)
    sample = run(client)["tasks"]["longbench_write_en_mini"]["samples"][0]
    assert sample["scores"]["Relevance"] == pytest.approx(3.4 / 0.9)
    assert sample["argmax_scores"]["Relevance"] == 4.0
    assert sample["weighted"] is True
    assert sample["quality"] == pytest.approx(LBW.quality({**LBW_SCORES, "Relevance": 3.4 / 0.9}))


def test_weighted_scores_survive_the_cache(tmp_path):
    reply = json_tokens(LBW_SCORES, {"Clarity": {" 5": 0.5, " 4": 0.5}})
    text = "".join(t.token for t in reply)
    cache = str(tmp_path / "c.sqlite")
    run(ScriptedBackend(Completion(text, "stop", logprobs=reply), features=BOTH), cache_path=cache)
    again = ScriptedBackend("unused", features=BOTH)
    sample = run(again, cache_path=cache)["tasks"]["longbench_write_en_mini"]["samples"][0]
    assert again.calls == 0 and sample["cached"] and sample["scores"]["Clarity"] == 4.5


def test_the_value_of_the_last_matching_key_is_weighted_when_the_example_is_echoed():
    example = '{"Relevance": 3, "Accuracy": 4, "Coherence": 3, "Clarity": 4, "Breadth and Depth": 2, "Reading Experience": 3}'
    reply = tokens(example + " then ") + json_tokens(LBW_SCORES, {"Coherence": {" 4": 0.75, " 2": 0.25}})
    parsed = {d: float(v) for d, v in LBW_SCORES.items()}
    assert weighted_scores(reply, LBW, parsed) == {"Coherence": 3.5, **{d: float(v) for d, v in LBW_SCORES.items() if d != "Coherence"}}


def test_a_gap_filled_dimension_is_never_weighted():
    reply = json_tokens({"Relevance": 3}, {"Relevance": {" 3": 0.5, " 5": 0.5}})
    assert weighted_scores(reply, LBW, {"Relevance": 3.0}, missing=("Relevance",)) == {}


def test_text_after_the_value_inside_its_token_must_match_too():
    reply = tokens('{"Clarity":', (" 4,", {" 4,": 0.5, " 2,": 0.25, " 2": 0.25}), ' "x": 1}')
    assert weighted_scores(reply, LBW, {"Clarity": 4.0}) == {"Clarity": pytest.approx((0.5 * 4 + 0.25 * 2) / 0.75)}


def test_on_a_ten_point_scale_a_one_token_is_ambiguous_unless_ten_is_a_token():
    # " 1" may begin " 1"+"0" when the tokenizer has no " 10": the dimension keeps its argmax score.
    ambiguous = tokens('{"Clarity":', (" 7", {" 7": 0.6, " 1": 0.2, " 8": 0.2}), "}")
    assert weighted_scores(ambiguous, LONGEN, {"Clarity": 7.0}) == {}
    # With " 10" among the alternatives the tokenizer spells ten in one token, so " 1" means one.
    clear = tokens('{"Clarity":', (" 7", {" 7": 0.5, " 1": 0.1, " 10": 0.2, " 8": 0.2}), "}")
    assert weighted_scores(clear, LONGEN, {"Clarity": 7.0}) == {"Clarity": pytest.approx(0.5 * 7 + 0.1 + 2 + 1.6)}


def test_an_unlikely_ambiguous_one_is_left_out_and_the_rest_weighted():
    # SmolLM2 spells 10 as "1","0": a " 1" holding at most 5% is dropped, bounding the error by 5% x 9 points.
    reply = tokens('{"Clarity":', (" 7", {" 7": 0.6, " 1": 0.04, " 8": 0.3, " 6": 0.06}), "}")
    assert weighted_scores(reply, LONGEN, {"Clarity": 7.0}) == {
        "Clarity": pytest.approx((0.6 * 7 + 0.3 * 8 + 0.06 * 6) / 0.96)}


def test_a_generated_ambiguous_one_keeps_its_argmax_however_likely():
    reply = tokens('{"Clarity":', (" 1", {" 1": 0.97, " 2": 0.03}), "}")
    assert weighted_scores(reply, LONGEN, {"Clarity": 1.0}) == {}


def test_a_value_written_over_two_tokens_keeps_its_argmax():
    split_ten = tokens('{"Clarity":', (" 1", {" 1": 0.9, " 9": 0.1}), "0", "}")
    assert weighted_scores(split_ten, LONGEN, {"Clarity": 10.0}) == {}


def test_without_logprobs_nothing_is_weighted():
    assert weighted_scores(None, LBW, {"Clarity": 4.0}) == {}
