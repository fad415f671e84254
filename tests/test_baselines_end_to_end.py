"""Both baselines end to end through a real `transformers serve` of the tiny random-weight model.

Its replies are noise: plans and ratings do not parse, so these runs show the failures being
journaled and counted without a crash; backtranslation without self-curation still yields pairs,
which are trained on for one step. (The parse-success paths are driven in test_baselines_steps.)
"""

from __future__ import annotations

import asyncio
import json

import pytest

from harness.serving.client import EndpointClient
from harness.config import from_dict
from harness.serving.serve import ServerConfig, serve
from selflengthen.baselines import (
    BacktranslationConfig,
    ImitationConfig,
    build_backtranslation_data,
    build_imitation_data,
    train_baseline,
)
from infra.journal import read_jsonl
from selflengthen.text import count_words

pytestmark = pytest.mark.slow

SAMPLING = {"temperature": 1.0, "top_p": 0.95, "top_k": 50, "repetition_penalty": 1.3, "max_tokens": 12}
TRAIN = {"max_steps": 1, "max_length": 1024, "torch_threads": 1, "logging_steps": 1}


@pytest.fixture(scope="module")
def endpoint(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with serve(str(tiny_model_dir), ServerConfig(torch_threads=1), log_path=log) as running:
        yield running


def build(builder, endpoint, config, work_dir):
    async def go():
        client = EndpointClient(endpoint, max_concurrency=2)
        try:
            return await builder(client, config, work_dir)
        finally:
            await client.close()

    return asyncio.run(go())


def backtranslation_config(data_dir, tiny_model_dir, **fields) -> BacktranslationConfig:
    data = {
        "corpus": str(data_dir / "federalist.jsonl"),
        "max_documents": 2,
        "shown_words": 40,
        "instruction_min_words": 1,
        "instruction_max_tokens": 12,
        "rating_max_tokens": 12,
        "rating_attempts": 2,
        "tokenizer": str(tiny_model_dir),
        "max_in_flight": 2,
        "sampling": {k: v for k, v in SAMPLING.items() if k != "max_tokens"},  # lengths: the *_max_tokens above
        "train": TRAIN,
        **fields,
    }
    return from_dict(BacktranslationConfig, data)


def test_backtranslation_with_self_curation_journals_every_text_and_counts_unreadable_ratings(
    endpoint, data_dir, tiny_model_dir, tmp_path
):
    config = backtranslation_config(data_dir, tiny_model_dir)
    result = build(build_backtranslation_data, endpoint, config, tmp_path / "bt")
    records = read_jsonl(tmp_path / "bt" / "pairs.jsonl")
    assert len(records) == result.items == 2 and sum(result.outcomes.values()) == 2
    assert result.requests.errors == 0 and result.requests.sent == len(read_jsonl(tmp_path / "bt" / "requests.jsonl"))
    for record in records:
        if record["outcome"] == "kept":
            assert record["rating"] >= config.min_rating
        elif record["outcome"] == "unrated":
            assert record["rating"] is None and result.rejections["rating.unparsed"] >= config.rating_attempts
    assert result.samples == len(read_jsonl(tmp_path / "bt" / "data.jsonl")) == result.outcomes.get("kept", 0)


def test_backtranslation_without_curation_trains_one_step_and_reports_the_arm(
    endpoint, data_dir, tiny_model_dir, tmp_path, monkeypatch
):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    config = backtranslation_config(data_dir, tiny_model_dir, min_rating=None)
    result = build(build_backtranslation_data, endpoint, config, tmp_path / "bt")
    rows = read_jsonl(tmp_path / "bt" / "data.jsonl")
    assert result.samples == len(rows) >= 1
    federalist = {json.loads(line)["text"][:200] for line in (data_dir / "federalist.jsonl").open()}
    for row in rows:
        user, answer = (m["content"] for m in row["messages"])
        assert answer[:200] in federalist or any(text.startswith(answer[:200]) for text in federalist)
        assert "words" in user
    stats = train_baseline(tmp_path / "bt", str(tiny_model_dir), config.train)
    assert (tmp_path / "bt" / "adapter" / "adapter_model.safetensors").is_file()
    assert stats["arm"] == "backtranslation" and stats["samples"] == len(rows) and stats["steps"] == 1
    assert stats["answer_words_mean"] == pytest.approx(sum(count_words(r["messages"][1]["content"]) for r in rows) / len(rows))
    assert 0 < stats["loss_tokens"] < stats["train_tokens"] <= len(rows) * config.train.max_length


def test_imitation_from_self_instruct_counts_every_unparseable_plan_and_refuses_to_train_on_nothing(
    endpoint, data_dir, tiny_model_dir, tmp_path
):
    config = from_dict(
        ImitationConfig,
        {
            "seed_files": {"en": str(data_dir / "seed_instructions_en.jsonl")},
            "self_instruct": {"instructions_per_language": 1, "max_attempts": 1, "include_seeds": True},
            "max_instructions": 2,
            "plan_attempts": 2,
            "plan_max_tokens": 12,
            "max_in_flight": 2,
            "sampling": SAMPLING,
            "train": TRAIN,
        },
    )
    result = build(build_imitation_data, endpoint, config, tmp_path / "im")
    answers = read_jsonl(tmp_path / "im" / "answers.jsonl")
    assert len(read_jsonl(tmp_path / "im" / "instructions.jsonl")) == 1
    assert len(answers) == result.items == 2 and result.requests.errors == 0
    assert result.outcomes == {"no_plan": 2} and result.rejections["plan.unparsed"] == 4
    assert all(a["plan"] is None and a["answer"] is None for a in answers)
    stats = json.loads((tmp_path / "im" / "stats.json").read_text())
    assert stats["samples"] == 0 and stats["answer_words_mean"] is None and stats["arm"] == "imitation"
    with pytest.raises(ValueError, match="has no training samples"):
        train_baseline(tmp_path / "im", str(tiny_model_dir), config.train)
