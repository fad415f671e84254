"""One decode step of the in-process engine's model, with the output layer on MKL against oneDNN prepacked.

    python benchmarks/bench_decode_step.py [--model smollm2-135m] [--threads 2] [--batch-sizes 1 4 16]

Both variants run in this process on the same weights, side by side: for each batch size a prefill
of 100 random tokens per row, then timed greedy decode steps. Prints ms per step, tokens/s and the
ratio, and the largest logit difference between the two on one prompt.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from transformers import AutoModelForCausalLM, DynamicCache

from harness.models import DEFAULT_MODEL, resolve_model
from infra.compute import prepacked_output_layer


def step_seconds(model, batch: int, steps: int) -> float:
    ids = torch.randint(100, 1000, (batch, 100), generator=torch.Generator().manual_seed(batch))
    with torch.inference_mode():
        cache = DynamicCache()
        out = model(input_ids=ids, use_cache=True, past_key_values=cache, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        started = time.perf_counter()
        for _ in range(steps):
            out = model(input_ids=token, use_cache=True, past_key_values=cache)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plain = AutoModelForCausalLM.from_pretrained(resolve_model(args.model), dtype=torch.float32).eval()
    packed = AutoModelForCausalLM.from_pretrained(resolve_model(args.model), dtype=torch.float32).eval()
    head = prepacked_output_layer(packed)
    if head is None:
        raise SystemExit("this torch build or model cannot prepack the output layer")
    packed.set_output_embeddings(head)
    probe = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.inference_mode():
        difference = (plain(input_ids=probe).logits - packed(input_ids=probe).logits).abs().max().item()
    print(f"{args.model}, {args.threads} thread(s), load average {os.getloadavg()[0]:.2f}; "
          f"largest logit difference {difference:.1e}")
    print("| rows | MKL ms/step | oneDNN prepacked ms/step | MKL tok/s | prepacked tok/s | speed-up |")
    print("|---|---|---|---|---|---|")
    for batch in args.batch_sizes:
        mkl, onednn = step_seconds(plain, batch, args.steps), step_seconds(packed, batch, args.steps)
        print(f"| {batch} | {mkl * 1e3:.1f} | {onednn * 1e3:.1f} | {batch / mkl:.1f} | {batch / onednn:.1f} "
              f"| {mkl / onednn:.2f}x |")


if __name__ == "__main__":
    main()
