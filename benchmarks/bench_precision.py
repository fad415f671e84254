"""fp32 against bf16 on this machine: is bf16 safe, and is it faster here?

    python benchmarks/bench_precision.py [--model smollm2-135m] [--prompts 6] [--record benchmarks/RESULTS.md]

Three measurements per precision, side by side in one run:
- greedy agreement: the same prompts decoded greedily in both; how many answers are identical and
  the mean share of tokens before the first difference;
- batched sampled decode: tokens/s with `--batch` requests at once through `InProcessBackend`;
- a short LoRA run: the loss per step and train tokens/s of the same few steps on the same text.
It also prints what `precision: auto` picks here (`infra.compute.use_bf16`), so the choice can be
checked against the measured speeds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_backends beside this file

import torch  # noqa: E402
from bench_backends import measure, prompts  # noqa: E402

from harness.serving.models import DEFAULT_MODEL, resolve_model  # noqa: E402
from infra.compute import cpu_computes_bf16, use_bf16  # noqa: E402
from infra.inprocess import InProcessBackend, InProcessConfig  # noqa: E402
from infra.sampling import SamplingConfig  # noqa: E402

PRECISIONS = ("fp32", "bf16")


async def greedy_answers(backend, count: int, max_tokens: int) -> list[list[int]]:
    results = await asyncio.gather(*(backend.chat(m, SamplingConfig(max_tokens=max_tokens)) for m in prompts(count)))
    return [backend.tokenizer(r.text, add_special_tokens=False)["input_ids"] for r in results]


def shared_prefix(a: list[int], b: list[int]) -> float:
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return same / max(len(a), len(b), 1)


def lora_steps(model_dir: str, precision: str, steps: int, seq_len: int, threads: int) -> dict:
    """A few LoRA steps on the same fixed text: loss per step and train tokens/s."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    text = " ".join(f"Paragraph {i}: the river town kept its market open through the winter, and the ferry ran "
                    f"twice a day while the bridge was rebuilt stone by stone." for i in range(200))
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :seq_len]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    losses, started = [], time.perf_counter()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(round(loss.item(), 4))
    seconds = time.perf_counter() - started
    return {"losses": losses, "train_tokens_per_s": round(steps * ids.shape[1] / seconds, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="checkpoint folder, Hub id or smollm2-135m")
    parser.add_argument("--prompts", type=int, default=6, help="prompts decoded greedily in both precisions")
    parser.add_argument("--greedy-tokens", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16, help="requests at once for the sampled decode")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per sampled request")
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=870, help="tokens per LoRA step")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1, as the other benchmarks)")
    parser.add_argument("--record", type=Path, default=None, help="append the result to this RESULTS.md")
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    report: dict = {"auto_picks": "bf16" if use_bf16("auto") else "fp32", "cpu_native_bf16": cpu_computes_bf16(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "load_start": round(_load(), 2)}
    greedy = {}
    for precision in PRECISIONS:
        config = InProcessConfig(Path(model), max_batch_size=args.batch, torch_threads=args.threads, precision=precision)
        with InProcessBackend(config) as backend:
            greedy[precision] = asyncio.run(greedy_answers(backend, args.prompts, args.greedy_tokens))
            asyncio.run(measure(backend, "sampled", 1, 8))  # warm-up
            report[f"decode_{precision}"] = asyncio.run(measure(backend, "sampled", args.batch, args.max_tokens))
        report[f"lora_{precision}"] = lora_steps(model, precision, args.train_steps, args.seq_len, args.threads)
        print(json.dumps({precision: [report[f"decode_{precision}"], report[f"lora_{precision}"]]}), flush=True)
    pairs = list(zip(greedy["fp32"], greedy["bf16"]))
    report["greedy_identical"] = f"{sum(a == b for a, b in pairs)}/{len(pairs)}"
    report["greedy_shared_prefix"] = round(sum(shared_prefix(a, b) for a, b in pairs) / len(pairs), 3)
    report["load_end"] = round(_load(), 2)
    report["decode_ratio"] = round(report["decode_bf16"]["tokens_per_s"] / report["decode_fp32"]["tokens_per_s"], 2)
    report["train_ratio"] = round(report["lora_bf16"]["train_tokens_per_s"] / report["lora_fp32"]["train_tokens_per_s"], 2)
    print(json.dumps(report, indent=1))
    print(f"precision: auto picks {report['auto_picks']}; bf16/fp32 decode {report['decode_ratio']}x, "
          f"train {report['train_ratio']}x; greedy identical {report['greedy_identical']}")
    if args.record:
        with open(args.record, "a") as out:
            out.write(_section(report, args))
    return report


def _load() -> float:
    import os

    return os.getloadavg()[0]


def _section(report: dict, args) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    rows = "\n".join(
        f"| {p} | {report[f'decode_{p}']['tokens_per_s']} | {report[f'lora_{p}']['train_tokens_per_s']} | "
        f"{report[f'lora_{p}']['losses']} |" for p in PRECISIONS)
    return (f"\n## {when}: precision, {Path(args.model).name}, {cpu}, {platform.system()} {platform.machine()}\n\n"
            f"precision: auto picks {report['auto_picks']} (torch CPU capability {report['cpu_capability']}, native bf16 "
            f"{report['cpu_native_bf16']}); bf16/fp32 decode {report['decode_ratio']}x, train {report['train_ratio']}x\n\n"
            f"{args.batch} sampled requests at once, {args.max_tokens} tokens each; LoRA r=8 all-linear, "
            f"{args.train_steps} steps of {args.seq_len} tokens; {args.threads} torch thread(s). Greedy agreement over "
            f"{args.prompts} prompts, {args.greedy_tokens} tokens: identical {report['greedy_identical']}, mean shared "
            f"prefix {report['greedy_shared_prefix']}. Load average (1 min) {report['load_start']} at start, "
            f"{report['load_end']} at end.\n\n"
            f"| precision | decode tokens/s | LoRA train tokens/s | loss per step |\n|---|---|---|---|\n{rows}\n")


if __name__ == "__main__":
    main()
