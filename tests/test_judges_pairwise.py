"""Pairwise judging against a reference arm: verdict parsing, both orders, win rates, position bias."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from judges import JudgeConfig, JudgeError, JudgeReplyError
from judges.pairwise import PairwiseConfig, judge_pairwise, load_pairwise_rubric, parse_verdict
from infra.backend import Completion
from tests.fakes import ScriptedBackend
from tests.logprob_replies import tokens


def run_dir(answers: dict[int, str], model: str) -> dict:
    samples = [{"doc_id": i, "prompt": f"prompt {i}", "response": a} for i, a in answers.items()]
    return {"model": model, "tasks": {"longen_mini": {"samples": samples}}}


def compare(model: dict, reference: dict, script, features=frozenset(), **fields) -> dict:
    client = ScriptedBackend(script=script, script_gets="messages", features=features)
    report = asyncio.run(
        judge_pairwise(model, reference, client, JudgeConfig(model="j", **fields), PairwiseConfig(), progress=False)
    )
    return report, client


def shown(messages) -> tuple[str, str]:
    """The two responses a pairwise prompt shows, A then B."""
    content = messages[-1]["content"]
    a = re.search(r"<response_A>\n(.*)\n</response_A>", content, re.DOTALL).group(1)
    b = re.search(r"<response_B>\n(.*)\n</response_B>", content, re.DOTALL).group(1)
    return a, b


@pytest.mark.parametrize(
    "reply, label",
    [
        ('{"verdict": "A"}', "A"),
        ('```json\n{"winner": "Response B"}\n```', "B"),
        ('{"verdict": "Tie"}', "tie"),
        ('Example: {"verdict": "A"}. My answer: {"verdict": "B"}', "B"),
        ("After comparing them, Verdict: B", "B"),
    ],
)
def test_verdicts_are_read_from_json_or_prose(reply, label):
    assert parse_verdict(reply).label == label


def test_a_reply_without_a_verdict_is_a_reply_error():
    with pytest.raises(JudgeReplyError, match="no verdict"):
        parse_verdict("Both are fine, I suppose.")


def test_every_prompt_is_judged_in_both_orders():
    model, reference = run_dir({0: "mine zero", 1: "mine one"}, "m"), run_dir({0: "ref zero", 1: "ref one"}, "base")
    _, client = compare(model, reference, lambda m, s, c: '{"verdict": "A"}')
    orders = sorted(shown(r.prompt) for r in client.sent)
    assert orders == sorted([("mine zero", "ref zero"), ("ref zero", "mine zero"), ("mine one", "ref one"), ("ref one", "mine one")])


def test_a_judge_that_always_picks_a_is_fully_position_biased_and_at_chance():
    model, reference = run_dir({0: "x", 1: "y", 2: "z"}, "m"), run_dir({0: "p", 1: "q", 2: "r"}, "base")
    report, _ = compare(model, reference, lambda m, s, c: '{"verdict": "A"}')
    task = report["tasks"]["longen_mini"]
    assert task["position_bias_rate"] == 1.0 and task["win_rate"] == 0.5 and task["lc_win_rate"] == pytest.approx(0.5)
    assert report["reference"] == "base"


def test_a_consistent_judge_gives_win_rate_with_ties_half_and_no_position_bias():
    model = run_dir({0: "better answer", 1: "better answer", 2: "same", 3: "worse answer"}, "m")
    reference = run_dir({0: "plain answer", 1: "plain answer", 2: "same", 3: "plain answer"}, "base")

    def prefer_better(messages, sampling, call):
        a, b = shown(messages)
        rank = {"better answer": 2, "plain answer": 1, "same": 1, "worse answer": 0}
        verdict = "A" if rank[a] > rank[b] else "B" if rank[b] > rank[a] else "tie"
        return json.dumps({"verdict": verdict})

    task = compare(model, reference, prefer_better)[0]["tasks"]["longen_mini"]
    assert task["win_rate"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert task["position_bias_rate"] == 0.0 and task["failures"] == 0
    low, high = task["win_rate_ci"]
    assert low <= task["win_rate"] <= high
    assert [s["length_diff"] for s in task["samples"]] == [1, 1, 0, 0]


def test_verdict_probabilities_weight_the_preference():
    # p(A) = .6, p(B) = .3, p(tie) = .1 in both orders: model first .6 + .05 = .65; reference first 1 − .65.
    reply = tokens('{"verdict": "', ("A", {"A": 0.6, "B": 0.3, "tie": 0.1}), '"}')
    text = "".join(t.token for t in reply)
    report, client = compare(
        run_dir({0: "x"}, "m"), run_dir({0: "y"}, "base"), lambda m, s, c: Completion(text, "stop", logprobs=reply),
        features=frozenset({"json_schema", "top_logprobs"}),
    )
    sample = report["tasks"]["longen_mini"]["samples"][0]
    assert client.sent[0].sampling.json_schema["properties"]["verdict"]["enum"] == ["A", "B", "tie"]
    assert sample["model_first"]["probabilities"] == pytest.approx({"A": 0.6, "B": 0.3, "tie": 0.1})
    assert sample["preference"] == pytest.approx((0.65 + 0.35) / 2) and sample["weighted"]


def test_a_failed_order_leaves_the_prompt_unscored_and_counted():
    report, _ = compare(run_dir({0: "x"}, "m"), run_dir({0: "y"}, "base"), lambda m, s, c: "no idea", max_retries=0)
    task = report["tasks"]["longen_mini"]
    assert task["failures"] == 1 and task["win_rate"] is None and task["samples"][0]["error"].startswith("unusable reply")


def test_a_reference_with_a_different_prompt_is_refused():
    reference = run_dir({0: "y"}, "base")
    reference["tasks"]["longen_mini"]["samples"][0]["prompt"] = "another prompt"
    with pytest.raises(JudgeError, match="reference run's prompt differs"):
        compare(run_dir({0: "x"}, "m"), reference, lambda m, s, c: '{"verdict": "A"}')


def test_pairwise_rubric_needs_both_outputs_in_its_template(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nversion: 1\nsystem: s\ntemplate: '$instruction $output_a'\n")
    with pytest.raises(JudgeError, match=r"\$output_b"):
        load_pairwise_rubric(bad)
