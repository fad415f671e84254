"""Requests answered on Ray Data (`harness/synthesis/ray_stage.py`): a real local Ray with 2 CPUs, an actor pool of in-process
engines on the tiny model, shards as Parquet files. Skipped without `pip install -e '.[ray]'`."""

from __future__ import annotations

import asyncio
import json

import pytest

from harness.synthesis.ray_stage import (
    RayStageConfig,
    ShardStore,
    _EngineActor,
    _write_shard,
    cut_shards,
    engine_settings,
    request_digest,
    run_step,
    vllm_row,
)
from tests.test_selflengthen_merge_dtype import random_adapter

SAMPLING = {"temperature": 0.7, "top_p": 0.9, "top_k": 20, "max_tokens": 8}
REQUESTS = [{"key": f"gen/{i}", "messages": [{"role": "user", "content": f"Write about topic {i}."}],
             "sampling": {**SAMPLING, "seed": 100 + i}} for i in range(4)] + \
           [{"key": f"ext/{i}", "prompt": f"Draft {i}: the river ran", "sampling": {**SAMPLING, "seed": 200 + i}}
            for i in range(3)]


@pytest.mark.parametrize("field, value", [("concurrency", 0), ("shard_size", 0), ("cpus_per_actor", 0),
                                          ("tensor_parallel_size", 0), ("max_lora_rank", True), ("wave_size", 0),
                                          ("linger_s", 0), ("linger_s", "fast")])
def test_a_pool_without_actors_or_shards_is_refused(field, value):
    with pytest.raises(ValueError, match=f"ray.{field} must be"):
        RayStageConfig(**{field: value})


def test_requests_without_their_own_key_are_refused(tmp_path):
    with pytest.raises(ValueError, match="its own string `key`"):
        run_step([{"key": "a", "prompt": "x"}, {"key": "a", "prompt": "y"}], {}, tmp_path, RayStageConfig())


def shard_answer(request: dict, text: str) -> dict:
    return {"key": request["key"], "digest": request_digest(request), "text": text, "finish_reason": "stop",
            "completion_tokens": 1}


def test_the_shard_store_reads_each_finished_shard_once_however_many_waves_ask(tmp_path, monkeypatch):
    """A wave asks for the stored answers before and after it runs: only shards new since the last ask are read."""
    import pyarrow.parquet as pq

    reads = []
    read_table = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda path: reads.append(path.name) or read_table(path))
    store = ShardStore(tmp_path)
    _write_shard(tmp_path, [shard_answer(REQUESTS[0], "first")])
    assert [a["text"] for a in store.answers().values()] == ["first"]
    _write_shard(tmp_path, [shard_answer(REQUESTS[1], "second")])
    (tmp_path / ".shard-torn.parquet.abc.tmp").write_bytes(b"half a file")
    assert sorted(a["text"] for a in store.answers().values()) == ["first", "second"]
    assert store.answers() == {request_digest(REQUESTS[0]): {"text": "first", "finish_reason": "stop",
                                                             "completion_tokens": 1},
                               request_digest(REQUESTS[1]): {"text": "second", "finish_reason": "stop",
                                                             "completion_tokens": 1}}
    assert len(reads) == len(set(reads)) == 2


def test_a_request_is_known_by_what_decides_its_answer_not_by_its_key():
    request = REQUESTS[0]
    assert request_digest(request) == request_digest({**request, "key": "another"})
    assert request_digest(request) != request_digest({**request, "model": "generator"})
    assert request_digest(request) != request_digest({**request, "sampling": {**SAMPLING, "seed": 1}})


def test_a_vllm_row_is_the_templated_prompt_with_the_adapters_folder_as_its_model_and_vllms_sampling():
    engine = {"model": "/base", "adapters": {"extender": "/work/iter_1/extender/adapter"}}
    schema = {"type": "object"}
    row = vllm_row({"key": "k", "messages": [{"role": "user", "content": "hi"}], "model": "extender",
                    "sampling": {**SAMPLING, "seed": 5, "stop": ["\n\n"], "json_schema": schema,
                                 "repetition_penalty": None}},
                   engine, lambda messages: f"<user>{messages[0]['content']}<assistant>")
    assert row["prompt"] == "<user>hi<assistant>" and row["model"] == "/work/iter_1/extender/adapter"
    assert row["sampling_params"] == {**SAMPLING, "seed": 5, "stop": ["\n\n"], "structured_outputs": {"json": schema}}
    assert "model" not in vllm_row({"key": "b", "prompt": "p", "model": None}, engine, str)
    with pytest.raises(ValueError, match="logprobs"):
        vllm_row({"key": "c", "prompt": "p", "sampling": {"top_logprobs": 2}}, engine, str)


def in_process_answers(tiny_model_dir, requests=REQUESTS, adapter=None) -> dict[str, str]:
    from infra.inprocess import InProcessBackend, InProcessConfig
    from infra.sampling import SamplingConfig

    async def answer(backend):
        async def one(row):
            sampling = SamplingConfig(**row["sampling"])
            done = await (backend.chat(row["messages"], sampling) if "messages" in row
                          else backend.complete(row["prompt"], sampling))
            return row["key"], done.text
        return dict(await asyncio.gather(*(one(r) for r in requests)))

    with InProcessBackend(InProcessConfig(tiny_model_dir, adapter=adapter, torch_threads=1)) as backend:
        return asyncio.run(answer(backend))


def engine_for(tiny_model_dir, adapters=None) -> dict:
    from infra.inprocess import InProcessConfig

    return engine_settings(InProcessConfig(tiny_model_dir, torch_threads=1), adapters)


@pytest.mark.slow
def test_the_ray_step_answers_every_request_as_the_in_process_engine_does(local_ray, tiny_model_dir, tmp_path):
    rows = run_step(REQUESTS, engine_for(tiny_model_dir), tmp_path / "step", RayStageConfig(concurrency=2, shard_size=2))
    assert [r["key"] for r in rows] == [r["key"] for r in REQUESTS]
    assert {r["key"]: r["text"] for r in rows} == in_process_answers(tiny_model_dir)
    assert len(list((tmp_path / "step").glob("shard-*.parquet"))) == 4


@pytest.mark.slow
def test_a_rerun_after_a_kill_sends_only_the_requests_no_stored_shard_answers(local_ray, tiny_model_dir, tmp_path):
    engine, config, step = engine_for(tiny_model_dir), RayStageConfig(concurrency=2, shard_size=3), tmp_path / "step"
    first = run_step(REQUESTS, engine, step, config)
    # What a kill mid-step leaves: finished shards as files, the rest missing, a torn temporary file.
    lost = min(step.glob("shard-*.parquet"))
    lost.unlink()
    (step / f".{lost.name}.0123456789ab.tmp").write_bytes(b"PAR1 torn")
    kept = {p.name: p.stat().st_mtime_ns for p in step.glob("shard-*.parquet")}
    assert run_step(REQUESTS, engine, step, config) == first
    assert {p.name: p.stat().st_mtime_ns for p in step.glob("shard-*.parquet") if p.name in kept} == kept
    assert len(list(step.glob("shard-*.parquet"))) == len(kept) + 1  # only the lost shard's requests went again


@pytest.mark.slow
def test_a_changed_request_under_an_old_key_is_answered_again_not_mixed_up(local_ray, tiny_model_dir, tmp_path):
    engine, config, step = engine_for(tiny_model_dir), RayStageConfig(concurrency=1, shard_size=8), tmp_path / "step"
    first = run_step(REQUESTS[:2], engine, step, config)
    changed = [{**REQUESTS[0], "sampling": {**SAMPLING, "seed": 7}}, REQUESTS[1]]
    again = run_step(changed, engine, step, config)
    assert again[1] == first[1] and again[0]["key"] == first[0]["key"]
    assert again[0]["text"] == in_process_answers(tiny_model_dir, changed[:1])[changed[0]["key"]]


@pytest.mark.slow
def test_a_row_naming_an_adapter_is_answered_by_that_adapter_and_the_base_row_by_the_base(local_ray, tiny_model_dir,
                                                                                       tmp_path):
    """The pitfall of ray-project/ray PR #62609 (per-row LoRA silently dropped), checked on the CPU actors."""
    adapter = random_adapter(tiny_model_dir, tmp_path / "adapter")
    prompt = {"prompt": "Draft: the river ran", "sampling": {**SAMPLING, "temperature": 0.0, "max_tokens": 12}}
    rows = run_step([{"key": "base", **prompt}, {"key": "lora", **prompt, "model": "generator"}],
                    engine_for(tiny_model_dir, {"generator": adapter}), tmp_path / "step",
                    RayStageConfig(concurrency=1, shard_size=2))
    texts = {row["key"]: row["text"] for row in rows}
    assert texts["base"] != texts["lora"]
    assert texts["base"] == in_process_answers(tiny_model_dir, [{"key": "x", **prompt}])["x"]
    assert texts["lora"] == in_process_answers(tiny_model_dir, [{"key": "x", **prompt}], adapter=adapter)["x"]


class ScriptedProcessor:
    """Stands in for Ray Data LLM's processor (no GPU here): each row's token ids as vLLM returns them, the end-of-
    sequence token kept, and its text as Ray's detokenize stage writes it (every token decoded, special ones
    skipped), through the real `postprocess`. A row in `errors` fails as in Ray 2.60: the whole dataset, unless the
    config sets `should_continue_on_error`, and then that row alone, with `__inference_error__` and no postprocess."""

    def __init__(self, tokens: dict[str, list[int]], tokenizer, errors: dict[str, str] | None = None) -> None:
        self.tokens, self.tokenizer, self.errors, self.sent = tokens, tokenizer, errors or {}, []

    def build(self, config, postprocess):
        def output(row):
            self.sent.append(row["key"])
            if row["key"] in self.errors and not config.should_continue_on_error:
                raise RuntimeError(self.errors[row["key"]])
            if row["key"] in self.errors:
                return {**row, "__inference_error__": self.errors[row["key"]]}
            tokens = self.tokens[row["key"]]
            answer = postprocess({**row, "generated_tokens": tokens, "num_generated_tokens": len(tokens),
                                  "generated_text": self.tokenizer.decode(tokens, skip_special_tokens=True)})
            return answer | ({"__inference_error__": ""} if config.should_continue_on_error else {})

        def run(rows):
            return type("Output", (), {"iter_rows": lambda self: iter([output(row) for row in rows])})()
        return run


def test_a_vllm_answer_that_ends_on_its_last_allowed_token_or_at_a_stop_string_stopped_and_one_cut_is_length(
        tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("ray.data.llm", reason="Ray is an optional extra: pip install -e '.[ray]'")
    import ray.data.llm
    from transformers import AutoTokenizer

    from harness.synthesis.ray_stage import _run_on_vllm

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    words = tokenizer.encode("the river ran far", add_special_tokens=False)[:3]
    rule = tokenizer.encode("\n\n---", add_special_tokens=False)
    tokens = {"eos on the last allowed token": words + [tokenizer.eos_token_id], "cut at the cap": words,
              "stop string": words[:1] + rule, "eos early": words[:1] + [tokenizer.eos_token_id]}
    requests = [{"key": key, "prompt": key, "sampling": {"max_tokens": len(ids) + (key == "eos early"),
                                                         "stop": ["\n\n---"]}} for key, ids in tokens.items()]
    monkeypatch.setattr(ray.data.llm, "build_processor", ScriptedProcessor(tokens, tokenizer).build)
    monkeypatch.setattr(ray.data, "from_items", lambda rows: rows)
    _run_on_vllm([requests], {"model": str(tiny_model_dir), "adapters": {}}, tmp_path, RayStageConfig(engine="vllm"))
    stored = ShardStore(tmp_path).answers()
    answers = {request["key"]: stored[request_digest(request)] for request in requests}
    assert {key: answer["finish_reason"] for key, answer in answers.items()} == {
        "eos on the last allowed token": "stop", "cut at the cap": "length", "stop string": "stop", "eos early": "stop"}
    assert answers["stop string"]["text"] == tokenizer.decode(words[:1])  # cut before the stop string, as vLLM does
    assert [answer["completion_tokens"] for answer in answers.values()] == [len(ids) for ids in tokens.values()]


def test_a_row_vllm_cannot_answer_or_that_cannot_be_built_fails_alone_and_a_rerun_sends_only_it(tiny_model_dir,
                                                                                                 tmp_path, monkeypatch):
    pytest.importorskip("ray.data.llm", reason="Ray is an optional extra: pip install -e '.[ray]'")
    import ray.data.llm
    from transformers import AutoTokenizer

    import harness.synthesis.ray_stage

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokens = {request["key"]: [5, 6, tokenizer.eos_token_id] for request in REQUESTS[4:]}
    requests = [*REQUESTS[4:], {"key": "unknown adapter", "prompt": "p", "model": "extender"}]
    monkeypatch.setattr(harness.synthesis.ray_stage, "start_ray", lambda config: None)
    monkeypatch.setattr(ray.data, "from_items", lambda rows: rows)
    engine, config = {"model": str(tiny_model_dir), "adapters": {}}, RayStageConfig(engine="vllm", shard_size=8)
    failing = ScriptedProcessor(tokens, tokenizer, errors={"ext/1": "ValueError: prompt too long"})
    monkeypatch.setattr(ray.data.llm, "build_processor", failing.build)
    rows = {row["key"]: row for row in run_step(requests, engine, tmp_path, config)}
    assert rows["ext/1"] == {"key": "ext/1", "error": "ValueError: prompt too long"}
    assert rows["unknown adapter"] == {"key": "unknown adapter", "error": "KeyError: 'extender'"}
    assert {rows[key]["finish_reason"] for key in ("ext/0", "ext/2")} == {"stop"}
    assert len(ShardStore(tmp_path).answers()) == 2  # the shard keeps its answered rows
    healed = ScriptedProcessor(tokens, tokenizer)
    monkeypatch.setattr(ray.data.llm, "build_processor", healed.build)
    assert "error" not in run_step(requests[:3], engine, tmp_path, config)[1] and healed.sent == ["ext/1"]


def test_an_engine_actor_fails_only_the_request_it_cannot_answer_and_stores_the_others(tiny_model_dir, tmp_path):
    bad = {**REQUESTS[1], "model": "extender"}  # this step has no adapters
    failed = _EngineActor(engine_for(tiny_model_dir), str(tmp_path))({"rows": [json.dumps([REQUESTS[0], bad])]})
    assert json.loads(failed["failed"][0]) == [
        {"key": bad["key"], "error": "ValueError: a request names adapter 'extender'; this step has none"}]
    assert list(ShardStore(tmp_path).answers()) == [request_digest(REQUESTS[0])]


def test_a_wave_is_cut_into_shards_that_each_name_one_model_a_models_shards_together():
    wave = [{"key": f"{i}", "model": model} for i, model in enumerate(["generator", "extender", None, "generator",
                                                                        "extender", "generator"])]
    assert [[r["key"] for r in shard] for shard in cut_shards(wave, 2)] == [["0", "3"], ["5"], ["1", "4"], ["2"]]


def test_an_engine_actor_holds_one_model_at_a_time_and_lets_the_last_go_before_it_loads_the_next(tiny_model_dir,
                                                                                                  tmp_path,
                                                                                                  monkeypatch):
    """Spy: every engine the actor loads is recorded; when one loads, each loaded before it is closed and gone."""
    import gc
    import weakref

    from infra import inprocess

    loaded: list[weakref.ref] = []
    alive_at_load: list[int] = []

    class Recorded(inprocess.InProcessBackend):
        def __init__(self, config):
            gc.collect()
            alive_at_load.append(sum(ref() is not None for ref in loaded))
            super().__init__(config)
            loaded.append(weakref.ref(self))

    monkeypatch.setattr(inprocess, "InProcessBackend", Recorded)
    adapters = {role: random_adapter(tiny_model_dir, tmp_path / role) for role in ("generator", "extender")}
    actor = _EngineActor(engine_for(tiny_model_dir, adapters), str(tmp_path))
    generator = [{**REQUESTS[0], "model": "generator"}]
    mixed = [{**REQUESTS[1], "model": "extender"}, {**REQUESTS[2], "model": "generator"}]
    failed = actor({"rows": [json.dumps(generator), json.dumps(mixed), json.dumps([REQUESTS[3]])]})

    assert json.loads(failed["failed"][0]) == []
    assert alive_at_load == [0, 0, 0, 0]  # generator, extender, generator again, the base
    assert [ref() is None for ref in loaded] == [True, True, True, False]
    assert len(ShardStore(tmp_path).answers()) == 4


@pytest.mark.slow
def test_one_unusable_row_fails_only_its_request_on_the_actor_pool(local_ray, tiny_model_dir, tmp_path):
    bad = {"key": "bad", "prompt": "p", "model": "extender"}
    rows = run_step([*REQUESTS[:3], bad], engine_for(tiny_model_dir), tmp_path / "step",
                    RayStageConfig(concurrency=1, shard_size=4))
    assert rows[3] == {"key": "bad", "error": "ValueError: a request names adapter 'extender'; this step has none"}
    assert {row["key"]: row["text"] for row in rows[:3]} == in_process_answers(tiny_model_dir, REQUESTS[:3])
