"""The small experiment's eval of the base model through an old engine and the current one, in one run.

    python benchmarks/bench_eval.py --old REF [--limit 40] [--model smollm2-135m] [--out DIR]

`--old` names a commit (checked out into a `git worktree`, removed afterwards) whose whole harness
runs the "old" eval; the current tree runs the "new" one. Both are `selflengthen eval` of the base
model on both `*_small` tasks with the small experiment's settings (`examples/small.yaml`: the tasks'
published decoding, seed 0, cap 2,304 tokens, 32 in flight, the in-process server with 32 rows),
one after the other on this machine. `--limit` takes the first N prompts per task (40 is the whole
experiment). Prints, for each: wall time, answer tokens per second (tokens of the answers counted
with the model's tokenizer), maximum resident set of any one process (the server's), the share of
answers that ran to the cap, the share of speculative drafts the server accepted and its decode lanes
and threads (from its log); then the ratios. Nothing is cached between the two: each gets its own output folder.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = ["longbench_write_en_small", "longen_en_small"]


def eval_config(model: str, limit: int) -> str:
    """examples/small.yaml's eval section, as EvalConfig fields."""
    return json.dumps({"model": model, "tasks": TASKS, "limit": limit, "num_concurrent": 32, "max_gen_toks": 2304,
                       "seed": 0, "server": {"kind": "inprocess", "max_batch_size": 32}})


MARK = "BENCH_EVAL_RUN"
"""Environment variable that marks the eval's processes (its server inherits it) for the memory watcher."""


def timed_eval(tree: Path, config: Path, out: Path, mark: str) -> float:
    """Run `selflengthen eval` with `tree`'s code; its wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(tree), MARK: mark}
    command = [sys.executable, "-m", "harness.cli", "eval", "--config", str(config), "--out", str(out)]
    started = time.monotonic()
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"eval from {tree} failed ({result.returncode}): {result.stderr[-2000:]}")
    return time.monotonic() - started


def watch_rss(mark: str, stop, peak: list[int]) -> None:
    """Sample the eval's processes (the eval and its server, found by their `MARK`; not whatever else runs
    in the same folder) and keep the largest VmHWM."""
    needle = f"{MARK}={mark}".encode() + b"\0"
    while not stop.is_set():
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                if needle not in (status.parent / "environ").read_bytes():
                    continue
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except OSError:
                continue
        stop.wait(0.5)


def answer_stats(out: Path, tokenizer) -> dict:
    scores = json.loads((out / "scores.json").read_text())
    samples = [s for task in TASKS for s in scores["tasks"][task]["samples"]]
    tokens = sum(len(tokenizer(s["response"], add_special_tokens=False)["input_ids"]) for s in samples)
    at_cap = sum(1 for s in samples if s.get("ended_at_cap"))
    return {"answers": len(samples), "tokens": tokens, "at_cap": at_cap}


def measure(name: str, tree: Path, config: Path, work: Path, tokenizer) -> dict:
    import threading

    out, stop, peak = work / name, threading.Event(), [0]
    mark = f"{name}-{os.getpid()}"
    watcher = threading.Thread(target=watch_rss, args=(mark, stop, peak))
    watcher.start()
    try:
        wall = timed_eval(tree, config, out, mark)
    finally:
        stop.set()
        watcher.join()
    stats = answer_stats(out, tokenizer)
    return {"engine": name, "wall_s": wall, "max_rss_gb": peak[0] / 1e6, **stats, "tok_s": stats["tokens"] / wall,
            "acceptance": speculative_acceptance(out), "layout": engine_layout(out)}


def engine_layout(out: Path) -> str:
    """The decode lanes and threads the servers' logs name at start (engines before lanes name none)."""
    layouts = sorted({line.removeprefix("engine: ") for log in out.rglob("*.log")
                      for line in log.read_text(errors="replace").splitlines() if line.startswith("engine: ")})
    return "; ".join(layouts) or "not logged"


def speculative_acceptance(out: Path) -> str:
    """What the servers' logs say at shutdown about their drafts, summed over every server the eval started
    (one per task); an engine without drafts says nothing."""
    accepted = drafted = 0
    for log in sorted(out.rglob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            found = re.match(r"speculative decoding: (\d+) of (\d+) drafted", line)
            if found:
                accepted, drafted = accepted + int(found[1]), drafted + int(found[2])
    if not drafted:
        return "none"
    return f"{accepted} of {drafted} drafted tokens accepted ({100 * accepted / drafted:.1f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="commit whose engine is the baseline")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None, help="keep the eval folders here (default: a temp dir)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from transformers import AutoTokenizer

    from harness.serving.models import resolve_model
    from infra.compute import use_bf16

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model))
    work = args.out or Path(tempfile.mkdtemp(prefix="bench_eval_"))
    if any((work / name).exists() for name in ("old", "new")):  # lm-eval would answer from that run's cache
        raise SystemExit(f"error: {work} already holds an eval's folders (old/, new/); give an empty --out")
    work.mkdir(parents=True, exist_ok=True)
    config = work / "eval.yaml"
    config.write_text(eval_config(args.model, args.limit))
    old_tree = work / "old_tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree), args.old], check=True,
                   capture_output=True)
    try:
        rows = [measure("old", old_tree, config, work, tokenizer), measure("new", ROOT, config, work, tokenizer)]
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)], capture_output=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu}, {os.cpu_count()} cores, "
          f"precision {'bf16' if use_bf16('auto') else 'fp32'}, {args.limit} prompts per task, old = {args.old}, "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print("| engine | wall s | answer tokens | tokens/s | max resident GB | answers at the cap | speculative acceptance |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['engine']} | {row['wall_s']:.0f} | {row['tokens']} | {row['tok_s']:.1f} | {row['max_rss_gb']:.2f} "
              f"| {row['at_cap']} of {row['answers']} | {row['acceptance']} |")
    for row in rows:
        print(f"{row['engine']} server: {row['layout']}")
    old, new = rows
    print(f"new vs old: {old['wall_s'] / new['wall_s']:.2f}x faster in wall time, "
          f"{new['tok_s'] / old['tok_s']:.2f}x the tokens/s, {new['max_rss_gb'] / old['max_rss_gb']:.2f}x the resident set")


if __name__ == "__main__":
    main()
