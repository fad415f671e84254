"""The judge sanity check: degraded answers built as documented, win rates, and the trust summary."""

from __future__ import annotations

import asyncio
import json
import random
import re

import pytest

from judges import JudgeConfig, load_rubric
from judges.judgements import TaskPlan
from judges.sanity import SanityConfig, check_sanity, degraded_answers, derangement, shuffled, truncated
from judges.trust import task_trust, with_trust
from infra.rng import item_rng
from tests.fakes import ScriptedBackend

LBW = load_rubric("longbench_write")
PARAGRAPHS = "First paragraph about rivers.\n\nSecond paragraph, on fish.\n\nThird one: the sea."


def test_truncation_keeps_the_first_third_of_the_words_as_written():
    assert truncated("one two  three\n\nfour five six seven eight nine") == "one two  three"
    assert truncated("a b c d") == "a"


def test_truncation_of_unspaced_text_keeps_the_first_third_of_its_characters():
    assert truncated("春天来了花开了鸟儿") == "春天来"


def test_a_too_short_answer_cannot_be_truncated():
    assert truncated("ok") is None


def test_shuffling_reorders_paragraphs_deterministically():
    first = shuffled(PARAGRAPHS, item_rng(0, "t:0:shuffled"))
    assert first == shuffled(PARAGRAPHS, item_rng(0, "t:0:shuffled"))
    assert first != PARAGRAPHS
    assert sorted(first.split("\n\n")) == sorted(PARAGRAPHS.split("\n\n"))


def test_a_single_paragraph_has_its_sentences_shuffled():
    text = "Rivers flow. Fish swim! Does the sea wait? It does."
    result = shuffled(text, random.Random(1))
    assert result != text and "\n" not in result
    assert sorted(re.findall(r"[^.!?]+[.!?]", result.replace(" ", ""))) == sorted(
        re.findall(r"[^.!?]+[.!?]", text.replace(" ", ""))
    )


def test_a_single_sentence_cannot_be_shuffled():
    assert shuffled("Just one sentence here.", random.Random(0)) is None


@pytest.mark.parametrize("n", [2, 3, 5, 20])
def test_derangement_moves_every_answer(n):
    order = derangement(n, random.Random(n))
    assert sorted(order) == list(range(n)) and all(order[i] != i for i in range(n))


def test_swapped_answers_come_from_other_prompts_of_the_task():
    samples = [{"doc_id": i, "prompt": f"p{i}", "response": f"answer {i}"} for i in range(6)]
    swapped = degraded_answers(TaskPlan("longen_mini", LBW, samples), seed=3)["swapped"]
    assert sorted(swapped) == sorted(s["response"] for s in samples)
    assert all(a != s["response"] for a, s in zip(swapped, samples))


def run_sanity(script, n=6):
    answers = {i: f"Topic{i} opening words here.\n\nTopic{i} middle part.\n\nTopic{i} closing part ends." for i in range(n)}
    scores = {"tasks": {"longbench_write_en_mini": {"samples": [
        {"doc_id": i, "prompt": f"Write about Topic{i}", "response": a} for i, a in answers.items()
    ]}}}
    client = ScriptedBackend(script=script, script_gets="messages")
    report = asyncio.run(check_sanity(scores, client, JudgeConfig(model="j"), SanityConfig(subset_size=None), progress=False))
    return report["tasks"]["longbench_write_en_mini"], client


def discerning_judge(messages, sampling, call):
    """5 for an on-topic, complete answer; on-topic or complete alone 3; else 1."""
    content = messages[-1]["content"]
    topic = re.search(r"Write about (Topic\d+)", content).group(1)
    response = re.search(r"<response>\n(.*)\n</response>", content, re.DOTALL).group(1)
    score = 1 + 2 * (topic in response) + 2 * response.endswith("closing part ends.")
    return json.dumps(dict.fromkeys(LBW.dimensions, min(score, 5)))


def test_a_discerning_judge_prefers_originals_significantly():
    task, client = run_sanity(discerning_judge)
    for name in ("truncated", "swapped"):
        d = task["degradations"][name]
        assert (d["n"], d["wins"], d["rate"]) == (6, 6, 1.0)
        assert d["p_value"] == pytest.approx(1 / 64) and d["above_chance"]
        assert d["ci"][0] > 0.5
    assert client.calls == 6 * 4


def test_a_judge_blind_to_degradation_ties_at_half_and_is_not_above_chance():
    task, _ = run_sanity(lambda m, s, c: json.dumps(dict.fromkeys(LBW.dimensions, 4)))
    for d in task["degradations"].values():
        assert d["rate"] == 0.5 and d["ties"] == d["n"] and d["p_value"] is None and not d["above_chance"]


def test_trust_flags_a_judge_that_fails_its_sanity_check():
    task, _ = run_sanity(lambda m, s, c: json.dumps(dict.fromkeys(LBW.dimensions, 4)))
    trust = task_trust({"n": 6, "failures": 0}, task, None)
    assert trust["reliable"] is False and len(trust["unreliable_reasons"]) == 3
    assert trust["unreliable_reasons"][0].startswith("sanity truncated: original preferred at rate 0.50 over 6 pairs")


def test_trust_flags_more_than_a_fifth_failures_and_a_missing_sanity_check():
    trust = task_trust({"n": 10, "failures": 3}, None, None)
    assert trust["failures"] == {"count": 3, "rate": 0.3}
    assert trust["unreliable_reasons"] == ["judge failed on 3 of 10 samples (30%), above 20%", "sanity check not run"]


def test_a_passing_judge_is_reliable_and_carries_agreement():
    task, _ = run_sanity(discerning_judge)
    reliability = {"tasks": {"longbench_write_en_mini": {"n": 4, "quality": {"krippendorff_alpha": 0.9, "spearman": 0.8, "mean_std": 1.5}}}}
    # shuffling may keep the closing paragraph last, so require only the degradations that always lose
    task["degradations"].pop("shuffled")
    judgements = {"tasks": {"longbench_write_en_mini": {"n": 6, "failures": 1}}}
    trust = with_trust(judgements, {"tasks": {"longbench_write_en_mini": task}}, reliability)["tasks"]["longbench_write_en_mini"]["trust"]
    assert trust["reliable"] is True and trust["unreliable_reasons"] == []
    assert trust["agreement"]["krippendorff_alpha"] == 0.9 and set(trust["sanity"]) == {"truncated", "swapped"}
    assert "trust" not in judgements["tasks"]["longbench_write_en_mini"]


def test_the_sanity_progress_bar_ends_at_its_total():
    from rich.progress import Progress

    answers = ["One opening.\n\nTwo middle.\n\nThree end.", "Single paragraph only.", "x"]
    scores = {"tasks": {"longbench_write_en_mini": {"samples": [
        {"doc_id": i, "prompt": f"p{i}", "response": a} for i, a in enumerate(answers)]}}}
    client = ScriptedBackend(script=lambda messages, sampling, call: json.dumps(dict.fromkeys(LBW.dimensions, 3)),
                             script_gets="messages")
    with Progress(disable=True) as progress:
        asyncio.run(check_sanity(scores, client, JudgeConfig(model="j"), SanityConfig(subset_size=None), progress=progress))
        (bar,) = progress.tasks
        assert bar.completed == bar.total == client.calls
