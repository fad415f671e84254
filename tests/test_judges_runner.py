"""Running judges over scores.json: shape, retries, failures, cache, concurrency, progress, repeats.

The clients here are fault-injection fakes (scripted replies, injected errors, in-flight counting);
the end-to-end test with a real model is in test_judges_end_to_end.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from rich.progress import Progress

from judges import (
    JudgeConfig,
    JudgeError,
    ReliabilityConfig,
    judge_scores,
    load_rubric,
    measure_reliability,
)
from tests.fakes import ScriptedBackend

LBW = load_rubric("longbench_write")
LONGEN = load_rubric("longen")


def uniform_reply(messages: list[dict[str, str]], score: float) -> str:
    """A valid reply giving `score` on every dimension of the rubric the prompt asks for."""
    rubric = LONGEN if "seven aspects" in messages[-1]["content"] else LBW
    return json.dumps({d: score for d in rubric.dimensions})


def run_judge(scores, client, cfg, progress=False) -> dict:
    return asyncio.run(judge_scores(scores, client, cfg, progress=progress))


def run_reliability(scores, client, cfg, reliability, progress=False) -> dict:
    return asyncio.run(measure_reliability(scores, client, cfg, reliability, progress=progress))


def scores_json(n_lbw: int = 2, n_longen: int = 1, n_ruler: int = 1) -> dict:
    def samples(prefix: str, n: int) -> list[dict]:
        return [{"doc_id": i, "prompt": f"{prefix} prompt {i}", "response": f"{prefix} response {i}", "score": 1.0} for i in range(n)]

    return {
        "model": "tiny",
        "tasks": {
            "longbench_write_en_mini": {"task": "longbench_write_en_mini", "n": n_lbw, "S_l": 50.0, "samples": samples("lbw", n_lbw)},
            "longen_mini": {"task": "longen_mini", "n": n_longen, "overall": 0.5, "samples": samples("longen", n_longen)},
            "longwrite_ruler_mini": {"task": "longwrite_ruler_mini", "n": n_ruler, "samples": samples("ruler", n_ruler)},
        },
    }


def config(**overrides) -> JudgeConfig:
    return JudgeConfig(model="judge-model", **overrides)


def test_judgements_follow_the_run_directory_contract_and_published_s_q():
    def script(messages, sampling, call):
        score = 4 if "lbw response 0" in messages[-1]["content"] else (2 if "lbw" in messages[-1]["content"] else 7)
        return uniform_reply(messages, score)

    result = run_judge(scores_json(), ScriptedBackend(script=script, script_gets="messages"), config(), progress=False)

    assert result["judge"] == {"model": "judge-model", "rubric": "auto", "structured": False, "top_logprobs": None,
                               "schema_refused": None}
    assert set(result["tasks"]) == {"longbench_write_en_mini", "longen_mini"}
    lbw = result["tasks"]["longbench_write_en_mini"]
    assert [s["quality"] for s in lbw["samples"]] == [75.0, 25.0]
    assert lbw["S_q"] == 50.0 and lbw["n"] == 2 and lbw["failures"] == 0
    assert lbw["samples"][0]["scores"]["Breadth and Depth"] == 4.0 and lbw["samples"][0]["error"] is None
    longen = result["tasks"]["longen_mini"]
    assert longen["mean_score"] == 7.0
    assert longen["S_q"] == pytest.approx(600 / 9)
    json.dumps(result)  # the dict is written as judgements.json as is


def test_judge_prompts_are_greedy_and_carry_the_sample():
    client = ScriptedBackend(script=lambda m, s, c: uniform_reply(m, 3), script_gets="messages")
    run_judge(scores_json(n_lbw=1, n_longen=0), client, config(max_tokens=77), progress=False)
    assert [(r.sampling.temperature, r.sampling.max_tokens) for r in client.sent] == [(0.0, 77)]


def test_unparseable_replies_are_retried_then_recorded_as_failures():
    client = ScriptedBackend("I think it is pretty good!")
    result = run_judge(scores_json(n_lbw=2, n_longen=0), client, config(max_retries=2), progress=False)

    task = result["tasks"]["longbench_write_en_mini"]
    assert client.calls == 2 * 3
    assert task["failures"] == 2 and task["S_q"] is None
    for sample in task["samples"]:
        assert sample["quality"] is None and sample["scores"] is None
        assert sample["error"].startswith("unusable reply: no JSON object") and "[after 3 attempts]" in sample["error"]


def test_retries_sample_at_retry_temperature_and_can_recover():
    client = ScriptedBackend(script=lambda m, s, c: "garbage" if c == 1 else uniform_reply(m, 5), script_gets="messages")
    result = run_judge(scores_json(n_lbw=1, n_longen=0), client, config(retry_temperature=0.5), progress=False)

    sample = result["tasks"]["longbench_write_en_mini"]["samples"][0]
    assert [r.sampling.temperature for r in client.sent] == [0.0, 0.5]
    assert sample["quality"] == 100.0 and sample["attempts"] == 2 and sample["error"] is None


def test_backend_exceptions_are_recorded_on_the_sample_not_raised():
    def script(messages, sampling, call):
        raise ConnectionError("server at 127.0.0.1:9 refused\nthe connection")

    result = run_judge(scores_json(n_lbw=1, n_longen=0), ScriptedBackend(script=script, script_gets="messages"), config(max_retries=1), progress=False)

    sample = result["tasks"]["longbench_write_en_mini"]["samples"][0]
    assert sample["error"] == "backend error: ConnectionError: server at 127.0.0.1:9 refused the connection [after 2 attempts]"


def test_missing_dimension_is_scored_three_and_recorded():
    reply = json.dumps({d: 5 for d in LBW.dimensions if d != "Accuracy"})
    result = run_judge(scores_json(n_lbw=1, n_longen=0), ScriptedBackend(reply), config(), progress=False)

    task = result["tasks"]["longbench_write_en_mini"]
    assert task["samples"][0]["missing"] == ["Accuracy"]
    assert task["samples"][0]["scores"]["Accuracy"] == 3.0
    assert task["samples"][0]["quality"] == pytest.approx((5 * 100 + 50) / 6)
    assert task["missing_dimensions"] == 1


def test_second_run_with_the_same_cache_makes_zero_calls(tmp_path):
    cfg = config(cache_path=str(tmp_path / "judge_cache.sqlite"))
    first_client = ScriptedBackend(script=lambda m, s, c: uniform_reply(m, 4), script_gets="messages")
    first = run_judge(scores_json(), first_client, cfg, progress=False)
    second_client = ScriptedBackend(script=lambda m, s, c: uniform_reply(m, 1), script_gets="messages")
    second = run_judge(scores_json(), second_client, cfg, progress=False)

    assert first_client.calls == 3 and second_client.calls == 0
    assert all(s["cached"] for t in second["tasks"].values() for s in t["samples"])
    assert second["tasks"]["longbench_write_en_mini"]["S_q"] == first["tasks"]["longbench_write_en_mini"]["S_q"]


def test_failures_are_not_cached_so_a_rerun_tries_again(tmp_path):
    cfg = config(cache_path=str(tmp_path / "cache.sqlite"), max_retries=0)
    run_judge(scores_json(n_lbw=1, n_longen=0), ScriptedBackend("nope"), cfg, progress=False)
    retry_client = ScriptedBackend(script=lambda m, s, c: uniform_reply(m, 2), script_gets="messages")
    result = run_judge(scores_json(n_lbw=1, n_longen=0), retry_client, cfg, progress=False)
    assert retry_client.calls == 1
    assert result["tasks"]["longbench_write_en_mini"]["failures"] == 0


def test_changing_the_judge_model_misses_the_cache(tmp_path):
    path = str(tmp_path / "cache.sqlite")
    run_judge(scores_json(n_lbw=1, n_longen=0), ScriptedBackend(script=lambda m, s, c: uniform_reply(m, 2), script_gets="messages"), config(cache_path=path), progress=False)
    other = ScriptedBackend(script=lambda m, s, c: uniform_reply(m, 2), script_gets="messages")
    run_judge(scores_json(n_lbw=1, n_longen=0), other, JudgeConfig(model="other-judge", cache_path=path), progress=False)
    assert other.calls == 1


def test_concurrency_never_exceeds_max_concurrency():
    client = ScriptedBackend(script=lambda m, s, c: uniform_reply(m, 3), script_gets="messages", delay=0.01)
    run_judge(scores_json(n_lbw=10, n_longen=6), client, config(max_concurrency=3), progress=False)
    assert client.calls == 16
    assert client.most_in_flight == 3


def test_a_fixed_rubric_grades_every_task():
    client = ScriptedBackend(json.dumps({d: 5 for d in LBW.dimensions}))
    result = run_judge(scores_json(), client, config(rubric="longbench_write"), progress=False)
    assert set(result["tasks"]) == {"longbench_write_en_mini", "longen_mini", "longwrite_ruler_mini"}
    assert {t["rubric"] for t in result["tasks"].values()} == {"longbench_write"}


def test_callers_progress_bar_advances_to_the_total():
    client = ScriptedBackend(script=lambda m, s, c: uniform_reply(m, 3), script_gets="messages")
    with Progress(disable=True) as progress:
        run_judge(scores_json(n_lbw=3, n_longen=2), client, config(), progress=progress)
        (bar,) = progress.tasks
    assert bar.total == 5 and bar.completed == 5


def test_judge_scores_is_awaitable_inside_a_running_loop():
    client = ScriptedBackend(script=lambda m, s, c: uniform_reply(m, 3), script_gets="messages")
    result = asyncio.run(judge_scores(scores_json(n_lbw=1, n_longen=0), client, config(), progress=False))
    assert result["tasks"]["longbench_write_en_mini"]["S_q"] == 50.0


@pytest.mark.parametrize(
    "scores, message",
    [
        ({"model": "x"}, "'tasks' mapping"),
        ({"tasks": {"longen_mini": {"n": 1}}}, "has no 'samples' list"),
        ({"tasks": {"longen_mini": {"samples": [{"prompt": "p"}]}}}, "sample 0 needs string 'prompt' and 'response'"),
    ],
)
def test_malformed_scores_raise_a_clear_error(scores, message):
    with pytest.raises(JudgeError, match=message):
        run_judge(scores, ScriptedBackend(""), config(), progress=False)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"model": ""}, "must name the judge model"),
        ({"model": "j", "max_concurrency": 0}, "max_concurrency must be at least 1"),
        ({"model": "j", "max_retries": -1}, "max_retries must be 0 or more"),
    ],
)
def test_judge_config_rejects_unusable_values(fields, message):
    with pytest.raises(JudgeError, match=message):
        JudgeConfig(**fields)


def test_unknown_rubric_names_the_packaged_ones():
    with pytest.raises(JudgeError, match="unknown rubric 'alpaca'; packaged rubrics: longbench_write, longen"):
        load_rubric("alpaca")


def test_rubric_prompt_holds_the_sample_and_says_to_ignore_length():
    for rubric in (LBW, LONGEN):
        system, user = rubric.messages("Write 2000 words on rivers. $x {braces}", "Rivers flow {down}.")
        assert system["role"] == "system" and user["role"] == "user"
        assert "Write 2000 words on rivers. $x {braces}" in user["content"] and "Rivers flow {down}." in user["content"]
        assert "length" in user["content"].lower() and "JSON" in user["content"]
        assert all(d in user["content"] for d in rubric.dimensions)


def test_reliability_repeats_are_real_calls_and_agreement_is_reported(tmp_path):
    def script(messages, sampling, call):
        doc = int(messages[-1]["content"].split("lbw response ")[1][0])
        return uniform_reply(messages, 1 + doc % 5)  # same ranking on every repeat

    cfg = config(cache_path=str(tmp_path / "cache.sqlite"))
    reliability = ReliabilityConfig(repeats=3, temperature=0.9, subset_size=4, seed=1)
    client = ScriptedBackend(script=script, script_gets="messages")
    report = run_reliability(scores_json(n_lbw=6, n_longen=0), client, cfg, reliability, progress=False)

    assert client.calls == 3 * 4 and {r.sampling.temperature for r in client.sent} == {0.9}
    task = report["tasks"]["longbench_write_en_mini"]
    assert task["n"] == 4 and task["failures"] == 0
    assert task["quality"]["krippendorff_alpha"] == 1.0
    assert task["quality"]["spearman"] == pytest.approx(1.0)
    assert task["quality"]["mean_std"] == 0.0
    assert all(len(s["quality"]) == 3 and s["std"] == 0.0 for s in task["samples"])

    again = ScriptedBackend(script=script, script_gets="messages")
    run_reliability(scores_json(n_lbw=6, n_longen=0), again, cfg, reliability, progress=False)
    assert again.calls == 0


def test_long_responses_are_cut_for_the_judge_when_configured():
    seen = []

    def script(messages, sampling, call):
        seen.append(messages[-1]["content"])
        return uniform_reply(messages, 3)

    scores = {"tasks": {"longen_mini": {"samples": [{"doc_id": 0, "prompt": "p", "response": "a" * 50 + "TAIL"}]}}}
    run_judge(scores, ScriptedBackend(script=script, script_gets="messages"), config(max_response_chars=50), progress=False)
    assert "a" * 50 + "\n[... response cut here for the judge: 4 more characters]" in seen[0]
    assert "TAIL" not in seen[0]
