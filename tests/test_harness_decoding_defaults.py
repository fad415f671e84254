"""One rule for decoding defaults on every server: a sampling field a request leaves unset takes the value
the checkpoint's generation_config sets (vLLM's default, `--generation-config auto`), else the server's own."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
from transformers import GenerationConfig

from harness.serving.client import sampling_request, served_generation_defaults
from infra.inprocess import InProcessBackend, InProcessConfig
from infra.openai_wire import chat_request
from infra.sampling import SamplingConfig

MODEL_SAMPLING = {"temperature": 0.6, "top_p": 0.9, "top_k": 7, "repetition_penalty": 1.3}


@pytest.fixture(scope="module")
def opinionated_model(tiny_model_dir, tmp_path_factory):
    """The tiny checkpoint with a generation_config that sets every sampling field, as Qwen's does."""
    folder = tmp_path_factory.mktemp("opinionated") / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = GenerationConfig.from_pretrained(folder)
    config.update(do_sample=True, **MODEL_SAMPLING)
    config.save_pretrained(folder)
    return folder


def answers(engine, sampling: list[SamplingConfig]) -> list[str]:
    async def run():
        return await asyncio.gather(*[engine.chat([{"role": "user", "content": "Write about rain"}], s)
                                      for s in sampling])

    return [reply.text for reply in asyncio.run(run())]


def test_the_inprocess_engine_fills_unset_fields_from_the_models_generation_config(opinionated_model):
    with InProcessBackend(InProcessConfig(opinionated_model, torch_threads=1)) as engine:
        assert engine.sampling_defaults == MODEL_SAMPLING
        unset = [SamplingConfig(temperature=0.6, top_p=0.9, max_tokens=16, seed=seed) for seed in range(4)]
        spelled_out = [SamplingConfig(temperature=0.6, top_p=0.9, top_k=7, repetition_penalty=1.3, max_tokens=16,
                                      seed=seed) for seed in range(4)]
        other = [SamplingConfig(temperature=0.6, top_p=0.9, top_k=400, repetition_penalty=1.0, max_tokens=16,
                                seed=seed) for seed in range(4)]
        assert answers(engine, unset) == answers(engine, spelled_out)
        assert answers(engine, unset) != answers(engine, other)
        # A raw request with no sampling fields: the wire takes temperature and top_p from the model too.
        _, sampling = chat_request({"messages": [{"role": "user", "content": "hi"}]}, engine.sampling_defaults)
        assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.repetition_penalty) == (0.6, 0.9, None, None)


def test_every_server_kind_is_sent_what_leaves_the_model_to_fill_the_same_fields(opinionated_model):
    """The harness sends temperature and top_p always, top_k and repetition_penalty only when a config sets
    them. vLLM then fills the rest from the same generation_config (its OpenAI server's
    `to_sampling_params(default_sampling_params)`), the in-process engine as above, and a transformers
    server, whose request config replaces the model's, gets the model's fields written in."""
    sampling = SamplingConfig(temperature=0.6, top_p=0.9, max_tokens=16)
    for kind in ("vllm", "inprocess"):
        body = sampling_request(sampling, kind)
        assert {"top_k", "repetition_penalty"}.isdisjoint(body.get("extra_body", {})) and "top_k" not in body
    generation = json.loads(sampling_request(sampling, "transformers", served_generation_defaults(str(opinionated_model)))
                            ["extra_body"]["generation_config"])
    assert {k: generation[k] for k in MODEL_SAMPLING} == MODEL_SAMPLING
    set_here = SamplingConfig(temperature=0.6, top_p=0.9, top_k=3, repetition_penalty=1.1, max_tokens=16)
    assert sampling_request(set_here, "vllm")["extra_body"] == sampling_request(set_here, "inprocess")["extra_body"] == {
        "top_k": 3, "repetition_penalty": 1.1}
