"""Contract: what harness/synthesis/ray_stage.py sends Ray Data LLM's vLLM processor is read by Ray's own code as meant, and
what that code returns is what the harness reads back. Written against Ray 2.60.0 (pinned below: another release
must be checked again, then the pin moved).

vLLM needs a GPU build and is not installed here, so a stand-in `vllm` module takes the engine's place: it holds only
the names Ray's stage code touches and records what Ray builds from each row (the `SamplingParams` keywords, the
structured-outputs parameters, the LoRA request, the prompt). Everything else is Ray's real code: the processor
`build_processor` assembles from our config, and each of its stages (tokenize, the vLLM engine stage, detokenize,
the postprocess wrapper) run on one batch in this process, as Ray Data's map_batches would run them. So a key Ray
renames (`structured_outputs` back to `guided_decoding`, a LoRA row's `model`) fails here, not on a GPU cluster.
The stand-in's `SamplingParams` takes only the fields read in vLLM's own `vllm/sampling_params.py`
(VLLM_SAMPLING_FIELDS): a field the harness starts sending must be checked there and added.
"""

from __future__ import annotations

import sys
import types

import pytest

from harness.synthesis.ray_stage import RayStageConfig, run_step

RAY_RELEASE = "2.60.0"
VLLM_SAMPLING_FIELDS = {"temperature", "top_p", "top_k", "repetition_penalty", "max_tokens", "stop", "seed",
                        "structured_outputs"}
"""vLLM's `SamplingParams` fields that the harness sends (each one read in vLLM's source, vllm/sampling_params.py)."""
VLLM_STRUCTURED_FIELDS = {"json"}
"""The `StructuredOutputsParams` field the harness fills (vllm/sampling_params.py)."""
SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}


class StandInVllm:
    """A `vllm` module with only what Ray's vLLM stage touches; its engine answers every prompt with `answer` token
    ids, the end-of-sequence token last, and fails a prompt whose text holds FAIL as vLLM fails a bad request."""

    def __init__(self, answer: list[int], tokenizer) -> None:
        self.engine_kwargs: dict = {}
        self.requests: list[dict] = []
        stand_in = self

        class SamplingParams:
            def __init__(self, **kwargs):
                unknown = set(kwargs) - VLLM_SAMPLING_FIELDS
                if unknown:
                    raise TypeError(f"SamplingParams got unexpected keyword arguments {sorted(unknown)}")
                self.kwargs = kwargs

        class StructuredOutputsParams:
            def __init__(self, **kwargs):
                assert set(kwargs) <= VLLM_STRUCTURED_FIELDS, kwargs
                self.kwargs = kwargs

        class LoRARequest:
            def __init__(self, lora_name, lora_int_id, lora_path):
                self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path

        class CompletionOutput(types.SimpleNamespace):
            pass

        class RequestOutput(types.SimpleNamespace):
            pass

        class Engine:
            async def do_log_stats(self):
                pass

            async def generate(self, request_id, prompt, sampling_params, lora_request):
                text = tokenizer.decode(prompt["prompt_token_ids"])
                stand_in.requests.append({"prompt": text, "sampling": sampling_params.kwargs, "lora": lora_request})
                if "FAIL" in text:
                    raise ValueError("the prompt is longer than the model's context")
                yield RequestOutput(prompt=None, prompt_token_ids=prompt["prompt_token_ids"], prompt_logprobs=None,
                                    metrics=None, finished=True, outputs=[CompletionOutput(
                                        text=tokenizer.decode(answer, skip_special_tokens=True), token_ids=answer,
                                        logprobs=None)])

        class AsyncEngineArgs:
            def __init__(self, **kwargs):
                stand_in.engine_kwargs = kwargs

            def create_engine_config(self):
                return types.SimpleNamespace(scheduler_config=types.SimpleNamespace(max_num_seqs=8),
                                             parallel_config=types.SimpleNamespace(pipeline_parallel_size=1))

        class AsyncLLMEngine:
            @staticmethod
            def from_engine_args(engine_args, stat_loggers=None):
                return Engine()

        names = {"vllm": {"SamplingParams": SamplingParams, "AsyncEngineArgs": AsyncEngineArgs,
                          "AsyncLLMEngine": AsyncLLMEngine},
                 "vllm.sampling_params": {"StructuredOutputsParams": StructuredOutputsParams},
                 "vllm.lora": {}, "vllm.lora.request": {"LoRARequest": LoRARequest},
                 "vllm.outputs": {"RequestOutput": RequestOutput, "PoolingRequestOutput": type("Pooling", (), {})},
                 "vllm.inputs": {}, "vllm.inputs.llm": {"TextPrompt": dict, "TokensPrompt": dict},
                 "vllm.v1": {}, "vllm.v1.metrics": {}, "vllm.v1.metrics.ray_wrappers": {"RayPrometheusStatLogger": object}}
        self.modules = {name: types.ModuleType(name) for name in names}
        for name, attributes in names.items():
            vars(self.modules[name]).update(attributes)
            parent, _, leaf = name.rpartition(".")
            if parent:
                setattr(self.modules[parent], leaf, self.modules[name])


class InProcessProcessor:
    """Ray's real processor, run as `Processor.__call__` runs it, one batch through each stage's own UDF in this
    process instead of on Ray Data (whose vLLM stage would ask the cluster for a GPU)."""

    def __init__(self, processor) -> None:
        self.processor = processor

    def __call__(self, rows: list[dict]):
        import asyncio

        column = self.processor.DATA_COLUMN
        batch = [self.processor.preprocess(dict(row))[column] for row in rows]
        for stage in self.processor.stages.values():
            kwargs = stage.get_dataset_map_batches_kwargs(batch_size=len(rows), data_column=column)
            udf = stage.fn(**kwargs["fn_constructor_kwargs"])

            async def run(udf=udf, batch=batch):
                return [output async for output in udf({column: batch})]

            batch = asyncio.run(run())[0][column]
        rows_out = [self.processor.postprocess({column: row}) for row in batch]
        return types.SimpleNamespace(iter_rows=lambda: iter(rows_out))


def test_rays_own_vllm_stage_reads_our_rows_sampling_schema_and_lora_and_returns_what_we_read(tiny_model_dir,
                                                                                               tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    pytest.importorskip("ray.data.llm")
    import ray.data.llm
    from ray.llm._internal.batch.stages import vllm_engine_stage
    from transformers import AutoTokenizer

    from tests.test_selflengthen_merge_dtype import random_adapter

    assert ray.__version__ == RAY_RELEASE, f"written against Ray {RAY_RELEASE}: check this contract on {ray.__version__}"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    answer = tokenizer.encode("a short answer", add_special_tokens=False) + [tokenizer.eos_token_id]
    vllm = StandInVllm(answer, tokenizer)
    for name, module in vllm.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(vllm_engine_stage, "_VLLM_PROMPT_CLASSES", None)
    build = ray.data.llm.build_processor
    monkeypatch.setattr(ray.data.llm, "build_processor", lambda config, postprocess: InProcessProcessor(
        build(config, postprocess=postprocess)))
    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: None)  # neither the harness nor the stages need a cluster
    monkeypatch.setattr(ray.data, "from_items", lambda rows: rows)

    adapter = str(random_adapter(tiny_model_dir, tmp_path / "adapter"))
    sampling = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.1, "max_tokens": 64,
                "stop": ["\n\n---"], "seed": 3, "json_schema": None, "top_logprobs": None}
    requests = [{"key": "chat", "messages": [{"role": "user", "content": "Rate it."}], "model": "judge",
                 "sampling": {**sampling, "json_schema": SCHEMA}},
                {"key": "raw", "prompt": "Draft: the river ran", "model": None, "sampling": sampling},
                {"key": "bad", "prompt": "FAIL", "model": None, "sampling": sampling}]
    engine = {"model": str(tiny_model_dir), "adapters": {"judge": adapter}}
    rows = {row["key"]: row for row in run_step(requests, engine, tmp_path / "step",
                                                RayStageConfig(engine="vllm", shard_size=4))}

    for key in ("chat", "raw"):  # the output row's generated_text and generated_tokens, as the harness reads them
        assert rows[key] == {"key": key, "text": "a short answer", "finish_reason": "stop",
                             "completion_tokens": len(answer)}
    assert rows["bad"] == {"key": "bad", "error": "ValueError: the prompt is longer than the model's context"}
    sent = {request["prompt"]: request for request in vllm.requests}
    chat = sent[tokenizer.apply_chat_template(requests[0]["messages"], tokenize=False, add_generation_prompt=True)]
    assert set(chat["sampling"]) == VLLM_SAMPLING_FIELDS  # Ray popped structured_outputs and built its params
    assert chat["sampling"]["structured_outputs"].kwargs == {"json": SCHEMA}
    assert {k: chat["sampling"][k] for k in ("temperature", "max_tokens", "stop", "seed")} == {
        "temperature": 0.7, "max_tokens": 64, "stop": ["\n\n---"], "seed": 3}
    assert chat["lora"].lora_path == adapter  # a row's `model` naming an adapter folder is a LoRA request
    raw = sent["Draft: the river ran"]
    assert raw["lora"] is None and raw["sampling"]["structured_outputs"] is None
    assert {k: vllm.engine_kwargs[k] for k in ("enable_lora", "max_lora_rank", "max_loras", "tensor_parallel_size")} \
        == {"enable_lora": True, "max_lora_rank": 64, "max_loras": 1, "tensor_parallel_size": 1}
