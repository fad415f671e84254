"""Tokens per second of the in-process batched backend, and of any OpenAI-compatible server.

    python benchmarks/bench_backends.py MODEL_DIR [--batch-sizes 1 8 16] [--max-tokens 128]
    python benchmarks/bench_backends.py MODEL_DIR --serve-url http://127.0.0.1:8000/v1
    python benchmarks/bench_backends.py MODEL_DIR --samples-per-prompt 2 [--batch-sizes 16]

The first form loads MODEL_DIR with `InProcessBackend`; the second sends the same requests to a
server already started by hand (e.g. `transformers serve --continuous-batching ...`) so serving
flags can be compared on the same prompts. Each row: mode (greedy, or the paper's sampled
setting), how many requests ran at once, completion tokens, seconds, tokens per second.

`--samples-per-prompt N` measures prefix sharing instead: the same number of requests on long
(~800-token, Extender-sized) prompts, once all distinct and once N requests per prompt (the n
samples of one instruction), with the in-process engine's prefill seconds and tokens for each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from infra.backend import Completion
from infra.sampling import SamplingConfig

MODES = {
    "greedy": lambda max_tokens: SamplingConfig(max_tokens=max_tokens),
    "sampled": lambda max_tokens: SamplingConfig(
        temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1, max_tokens=max_tokens
    ),
}
TOPICS = ["a river town", "the history of bridges", "a winter market", "learning the violin", "a lighthouse keeper",
          "city gardens", "an old railway", "the first snow"]


def prompts(count: int) -> list[list[dict[str, str]]]:
    """Distinct long-writing requests, so nothing is cached and answers run to max_tokens."""
    return [
        [{"role": "user", "content": f"Write a long, detailed essay of at least 800 words about {TOPICS[i % len(TOPICS)]} (#{i})."}]
        for i in range(count)
    ]


class OpenAIChat:
    """The same `chat` call against a running OpenAI-compatible server, mapped as the harness maps it."""

    def __init__(self, base_url: str, model: str, kind: str) -> None:
        from openai import AsyncOpenAI

        self.client, self.model, self.kind = AsyncOpenAI(base_url=base_url, api_key="none", timeout=3600), model, kind
        config = json.loads((Path(model) / "generation_config.json").read_text()) if Path(model).is_dir() else {}
        self.model_defaults = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in config}

    async def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Completion:
        from harness.serving.client import sampling_request

        fields = sampling_request(sampling, self.kind, self.model_defaults)
        reply = await self.client.chat.completions.create(model=self.model, messages=messages, **fields)
        choice = reply.choices[0]
        return Completion(choice.message.content, choice.finish_reason, reply.usage.prompt_tokens, reply.usage.completion_tokens)


async def measure(backend, mode: str, batch_size: int, max_tokens: int) -> dict:
    sampling = MODES[mode](max_tokens)
    started = time.perf_counter()
    results = await asyncio.gather(*(backend.chat(messages, sampling) for messages in prompts(batch_size)))
    seconds = time.perf_counter() - started
    tokens = sum(result.completion_tokens for result in results)
    return {"mode": mode, "concurrent": batch_size, "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1)}


async def run(backend, batch_sizes: list[int], modes: list[str], max_tokens: int) -> list[dict]:
    # Warm-up in the first mode: first-call allocations, and `transformers serve --continuous-batching`
    # fixes its sampling for good from the first request it sees (measure one mode per server).
    await measure(backend, modes[0], 1, 8)
    rows = []
    for mode in modes:
        for batch_size in batch_sizes:
            rows.append(await measure(backend, mode, batch_size, max_tokens))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def long_prompts(count: int, backend) -> list[str]:
    """`count` distinct prompts of about 800 tokens, rendered with the chat template."""
    body = " ".join(f"Sentence {j} of the answer describes the river town, its market and its ferry." for j in range(50))
    return [backend.apply_chat_template([{"role": "user", "content": f"Expand this answer (#{i}): {body}"}])
            for i in range(count)]


async def measure_prefix_sharing(backend, requests: int, per_prompt: int) -> list[dict]:
    """Prefill cost of `requests` long prompts, all distinct against `per_prompt` requests per prompt."""
    sampling = SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1, max_tokens=16)
    rows = []
    for label, distinct in (("distinct", requests), (f"{per_prompt} per prompt", requests // per_prompt)):
        texts = long_prompts(distinct, backend)
        batch = [texts[i * distinct // requests] for i in range(requests)]  # a prompt's samples arrive together
        seconds_before, tokens_before = backend.stats.prefill_seconds, backend.stats.prefill_tokens
        started = time.perf_counter()
        await asyncio.gather(*(backend.complete(text, sampling) for text in batch))
        rows.append({"prompts": label, "requests": requests, "wall_s": round(time.perf_counter() - started, 2),
                     "prefill_s": round(backend.stats.prefill_seconds - seconds_before, 2),
                     "prefill_tokens": backend.stats.prefill_tokens - tokens_before})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="checkpoint folder (also the model name sent to --serve-url)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["greedy", "sampled"])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the in-process backend")
    parser.add_argument("--serve-url", default=None, help="measure this OpenAI-compatible server instead")
    parser.add_argument("--serve-kind", default="transformers", help="how the harness maps sampling for that server")
    parser.add_argument("--samples-per-prompt", type=int, default=None, help="measure prefix sharing instead")
    args = parser.parse_args()
    if args.serve_url:
        asyncio.run(run(OpenAIChat(args.serve_url, str(args.model), args.serve_kind), args.batch_sizes, args.modes, args.max_tokens))
        return
    from infra.inprocess import InProcessBackend, InProcessConfig

    config = InProcessConfig(args.model, max_batch_size=max(args.batch_sizes), torch_threads=args.threads)
    with InProcessBackend(config) as backend:
        if args.samples_per_prompt:
            asyncio.run(measure(backend, "sampled", 1, 8))  # warm-up
            asyncio.run(measure_prefix_sharing(backend, max(args.batch_sizes), args.samples_per_prompt))
            return
        asyncio.run(run(backend, args.batch_sizes, args.modes, args.max_tokens))


if __name__ == "__main__":
    main()
