"""One decode step: the batch-invariant decoder (`infra.decoder`) against transformers' own batched forward.

    python benchmarks/bench_decode_step.py [--model smollm2-135m] [--precision bf16] [--threads 1] [--batch-sizes 1 8 32]

What batch invariance costs: both run in this process on the same weights, side by side, for each
batch size a prefill of 100 random tokens per row, then timed greedy decode steps (transformers'
forward with a DynamicCache is what the engine ran before: one matmul for all rows, attention over
the padded batch). Prints ms per step, tokens/s and the ratio, and whether row 0's logits are
bitwise the same alone and in the batch, for each.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from transformers import AutoModelForCausalLM, DynamicCache

from harness.serving.models import DEFAULT_MODEL, resolve_model
from infra.decoder import InvariantDecoder


def prompts(batch: int) -> list[list[int]]:
    ids = torch.randint(100, 1000, (batch, 100), generator=torch.Generator().manual_seed(7))
    ids[:, 0] = 1
    return ids.tolist()


def transformers_steps(model, batch: int, steps: int) -> tuple[float, torch.Tensor]:
    """Seconds per step of transformers' batched forward, and row 0's logits at the last step."""
    with torch.inference_mode():
        cache = DynamicCache()
        out = model(input_ids=torch.tensor(prompts(batch)), use_cache=True, past_key_values=cache, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        started = time.perf_counter()
        for _ in range(steps):
            out = model(input_ids=torch.zeros_like(token) + 42, use_cache=True, past_key_values=cache)
        return (time.perf_counter() - started) / steps, out.logits[0, -1].float()


def invariant_steps(decoder: InvariantDecoder, batch: int, steps: int) -> tuple[float, torch.Tensor]:
    """Seconds per step of the batch-invariant decoder, and row 0's logits at the last step."""
    caches = [decoder.new_cache() for _ in range(batch)]
    decoder.forward(list(zip(caches, prompts(batch))), prefill=True)
    started = time.perf_counter()
    for _ in range(steps):
        logits = decoder.forward([(cache, [42]) for cache in caches], prefill=False)
    return (time.perf_counter() - started) / steps, logits[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model), dtype=dtype).eval()
    decoder = InvariantDecoder(model)
    print(f"{args.model}, {args.precision}, {args.threads} thread(s), load average {os.getloadavg()[0]:.2f}, "
          f"oneDNN prepacked: {decoder.head.packed is not None}")
    print("| rows | transformers ms/step | invariant ms/step | transformers tok/s | invariant tok/s | speed-up "
          "| row 0 same as alone (transformers / invariant) |")
    print("|---|---|---|---|---|---|---|")
    alone = transformers_steps(model, 1, 2)[1], invariant_steps(decoder, 1, 2)[1]
    for batch in args.batch_sizes:
        (plain, plain_row), (ours, our_row) = transformers_steps(model, batch, args.steps), invariant_steps(
            decoder, batch, args.steps)
        if args.steps != 2:  # row 0's logits after the same number of steps as alone
            plain_row, our_row = transformers_steps(model, batch, 2)[1], invariant_steps(decoder, batch, 2)[1]
        print(f"| {batch} | {plain * 1e3:.1f} | {ours * 1e3:.1f} | {batch / plain:.1f} | {batch / ours:.1f} "
              f"| {plain / ours:.2f}x | {torch.equal(plain_row, alone[0])} / {torch.equal(our_row, alone[1])} |")


if __name__ == "__main__":
    main()
