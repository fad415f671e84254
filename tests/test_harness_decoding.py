"""Each task decodes as its benchmark publishes, seeded per prompt; a config can override it; runs record it."""

from __future__ import annotations

import json

import pytest

from harness.errors import UserError
from harness.scoring.evaluate import EvalConfig, decoding_record, eval_decoding, validate_eval
from harness.scoring.lm_eval_model import prompt_seed
from harness.serving.serve import ServerConfig
from infra.sampling import SamplingConfig
from tasks.decoding import task_sampling
from tasks.registry import task_names

INPROCESS = ServerConfig(kind="inprocess")


@pytest.mark.parametrize("task", task_names())
def test_every_task_publishes_sampling_at_temperature_0_5(task):
    assert task_sampling(task) == SamplingConfig(temperature=0.5, top_p=1.0)


def test_eval_without_sampling_decodes_as_the_task_publishes_seeded_from_eval_seed():
    config = EvalConfig(tasks=["longbench_write_en_small", "longen_en_small"], server=INPROCESS, seed=7)
    assert eval_decoding(config) == SamplingConfig(temperature=0.5, top_p=1.0, seed=7)


def test_eval_sampling_overrides_every_tasks_decoding():
    config = EvalConfig(tasks=["longbench_write_en_small"], server=INPROCESS, sampling=SamplingConfig(top_p=0.9))
    assert eval_decoding(config) == SamplingConfig(temperature=0.0, top_p=0.9, seed=0)


def test_tasks_that_publish_different_decodings_are_refused_together(monkeypatch):
    import tasks.decoding

    monkeypatch.setattr(tasks.decoding, "task_sampling",
                        lambda task: SamplingConfig(temperature=0.5 if task.startswith("longen") else 0.7))
    config = EvalConfig(tasks=["longen_mini", "longwrite_ruler_mini"], server=INPROCESS)
    with pytest.raises(UserError, match=r"'longen_mini' and 'longwrite_ruler_mini' publish different decodings.*"
                                        r"eval\.sampling"):
        validate_eval(config)
    validate_eval(EvalConfig(tasks=config.tasks, server=INPROCESS, sampling=SamplingConfig(temperature=0.5)))


def test_eval_sampling_seed_is_refused_because_eval_seed_seeds_each_prompt():
    with pytest.raises(UserError, match=r"eval\.sampling\.seed is not used: each answer is seeded from eval\.seed"):
        validate_eval(EvalConfig(server=INPROCESS, sampling=SamplingConfig(temperature=0.5, seed=3)))


def test_lm_eval_hf_takes_the_seed_as_its_global_torch_seed_not_a_request_field():
    config = EvalConfig(tasks=["longen_mini"], backend="hf", seed=5)
    assert eval_decoding(config).seed is None
    assert decoding_record(config)["longen_mini"]["seeding"].startswith("one global torch seed")


def test_run_json_records_each_tasks_decoding_and_where_it_came_from():
    config = EvalConfig(tasks=["longbench_write_en_small", "longen_mini"], server=INPROCESS, max_gen_toks=48, seed=2)
    assert decoding_record(config)["longen_mini"] == {
        "temperature": 0.5, "top_p": 1.0, "top_k": None, "repetition_penalty": None, "seed": 2,
        "seeding": "per prompt", "source": "task", "max_gen_toks": 48}
    overridden = EvalConfig(tasks=["longen_mini"], server=INPROCESS, sampling=SamplingConfig())
    assert decoding_record(overridden)["longen_mini"]["source"] == "eval.sampling"
    assert decoding_record(overridden)["longen_mini"]["max_gen_toks"] == 1280  # the task's own cap


def test_prompt_seed_repeats_for_a_prompt_and_differs_between_prompts_and_seeds():
    one, other = [{"role": "user", "content": "Write 300 words."}], [{"role": "user", "content": "Write 400 words."}]
    assert prompt_seed(0, one) == prompt_seed(0, list(one))
    assert len({prompt_seed(0, one), prompt_seed(0, other), prompt_seed(1, one)}) == 3
    assert all(0 <= prompt_seed(seed, one) < 2**31 for seed in range(20))


def test_lm_eval_chat_payload_carries_the_prompts_own_seed():
    from harness.scoring.lm_eval_model import ProgressChatCompletion

    model = ProgressChatCompletion(model="m", base_url="http://127.0.0.1:9/v1/chat/completions",
                                   tokenizer_backend=None, tokenized_requests=False)
    messages = [{"role": "user", "content": "Write 300 words."}]
    payload = model._create_payload(messages, generate=True,
                                    gen_kwargs={"do_sample": True, "temperature": 0.5, "top_p": 1.0, "seed": 7})
    assert (payload["temperature"], payload["top_p"], payload["seed"]) == (0.5, 1.0, prompt_seed(7, messages))


def test_leaderboard_method_says_which_decoding_each_task_used(tmp_path):
    from leaderboard.build import build_leaderboard
    from tests.leaderboard_runs import MODELS, make_run_dir

    base = make_run_dir(tmp_path, *MODELS[0][:6], seed=0)
    tuned = make_run_dir(tmp_path, *MODELS[1][:6], seed=1)
    run = json.loads((tuned / "run.json").read_text())
    run["decoding"]["longen_mini"] = {**run["decoding"]["longen_mini"], "temperature": 0.0, "source": "eval.sampling"}
    (tuned / "run.json").write_text(json.dumps(run))
    method = build_leaderboard([base, tuned], None)["method"]["decoding"]
    assert method.startswith("longbench_write_en_mini, longwrite_ruler_mini: sampled at temperature 0.5, top_p 1.0, "
                             "seed 0 (per prompt), at most 1280 new tokens (the task's published decoding)")
    assert ("longen_mini: sampled at temperature 0.5, top_p 1.0, seed 0 (per prompt), at most 1280 new tokens "
            "(the task's published decoding) (smollm2-135m); greedy, at most 1280 new tokens (set by eval.sampling) "
            "(sl-iter1)") in method


@pytest.mark.slow
def test_the_same_seed_draws_the_same_answers_at_any_concurrency_and_another_seed_does_not(
        tiny_model_dir, data_dir, tmp_path):
    import io

    from rich.console import Console

    from harness.scoring.evaluate import run_eval

    def answers(name: str, seed: int, concurrency: int) -> list[str]:
        config = EvalConfig(model=str(tiny_model_dir), tasks=["longbench_write_en_mini"], limit=4, max_gen_toks=12,
                            num_concurrent=concurrency, seed=seed, server=INPROCESS, data_dir=str(data_dir))
        scores = run_eval(config, tmp_path / name, Console(file=io.StringIO()))
        assert json.loads((tmp_path / name / "run.json").read_text())["decoding"]["longbench_write_en_mini"][
            "temperature"] == 0.5
        return [sample["response"] for sample in scores["tasks"]["longbench_write_en_mini"]["samples"]]

    first = answers("first", seed=0, concurrency=4)
    assert answers("one_at_a_time", seed=0, concurrency=1) == first
    assert answers("other_seed", seed=1, concurrency=4) != first
