"""Hand-made run directories with realistic numbers, shared by the leaderboard and check tests.

Five checkpoints of a 135M model: the base, three Self-Lengthen iterations that write longer each time,
and an instruction-backtranslation baseline. Lengths are drawn from a seeded generator around what such
models produce (the base stops near 250 words whatever the demand); scores follow the published formulas.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tasks.scoring import length_score, longen_score

LBW_DEMANDS = [300, 500, 800, 1000, 1200, 1500, 2000, 2500, 3000, 400, 600, 900, 1800, 5000, 10000]
LONGEN = [("about", 2000), ("about", 3000), ("about", 4000), ("about", 5000),
          ("range", 2500), ("range", 3500), ("range", 4500), ("range", 6000),
          ("above", 2000), ("above", 3000), ("above", 4000), ("above", 5000),
          ("below", 3000), ("below", 4000), ("below", 6000), ("below", 8000)]
RULER_DEMANDS = [1000, 2000, 5000, 10000, 20000, 30000, 1000, 2000, 5000, 10000, 20000, 30000]
# model, arm, iteration, how far toward the demand it writes (log-scale), judge quality level, train stats
MODELS = [
    ("smollm2-135m", "base", None, 0.0, 33.0, None),
    ("sl-iter1", "self_lengthen", 1, 0.35, 32.0, {"samples": 480, "answer_words_mean": 610.0, "train_tokens": 410000}),
    ("sl-iter2", "self_lengthen", 2, 0.6, 30.0, {"samples": 480, "answer_words_mean": 1020.0, "train_tokens": 690000}),
    ("sl-iter3", "self_lengthen", 3, 0.8, 29.0, {"samples": 480, "answer_words_mean": 1540.0, "train_tokens": 1050000}),
    ("backtranslation", "backtranslation", None, 0.45, 31.0,
     {"samples": 85, "answer_words_mean": 2300.0, "train_tokens": 260000}),
]

# What `selflengthen eval` records per task in run.json when the tasks' own decoding is used.
DECODING = {"temperature": 0.5, "top_p": 1.0, "top_k": None, "repetition_penalty": None, "seed": 0,
            "seeding": "per prompt", "source": "task"}


def longen_bounds(kind: str, n: int) -> tuple[float, float]:
    """The accepted interval of a LonGen demand; a range demand here spans n ± 500."""
    return {"about": (0.8 * n, 1.2 * n), "range": (n - 500, n + 500), "above": (n, 1.5 * n),
            "below": (0.5 * n, n)}[kind]


def produced_words(rng: np.random.Generator, demand: float, reach: float) -> int:
    """Words a model writes: starts near 250 and moves toward the demand in log space by ``reach``."""
    log_words = (1 - reach) * np.log(250) + reach * np.log(demand) + rng.normal(0, 0.25)
    return int(round(np.exp(log_words)))


def response_text(words: int, model: str) -> str:
    return f"{model} writes: " + " ".join(["word"] * max(words - 3, 0))


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value), encoding="utf-8")


def make_run_dir(root: Path, model: str, arm: str, iteration, reach: float, quality_level: float,
                 train_stats, seed: int, answer: str | None = None, judge_failure_ids=(3,)) -> Path:
    """One run directory following docs/run_directory.md; ``answer`` replaces the first response text."""
    rng = np.random.default_rng(seed)
    out = root / model
    out.mkdir(parents=True)
    lbw, longen, ruler = [], [], []
    for i, demand in enumerate(LBW_DEMANDS):
        words = produced_words(rng, demand, reach)
        lbw.append({"doc_id": i, "prompt": f"Write a {demand}-word essay about topic {i}.",
                    "response": response_text(words, model), "words": words, "required_words": demand,
                    "score": length_score(demand, words), "type": "essay", "language": "en"})
    if answer is not None:
        lbw[0]["response"] = answer
    for i, (kind, n) in enumerate(LONGEN):
        words = produced_words(rng, n, reach)
        bounds = longen_bounds(kind, n)
        longen.append({"doc_id": i, "prompt": f"Write a story, {kind} {n} words.", "response": "...",
                       "words": words, "required_words": (bounds[0] + bounds[1]) / 2, "bounds": list(bounds),
                       "type": kind, "language": "en", "score": longen_score(words, bounds)})
    for i, demand in enumerate(RULER_DEMANDS):
        words = produced_words(rng, demand, reach)
        ruler.append({"doc_id": i, "prompt": f"Write a {demand}-word guide.", "response": "...",
                      "words": words, "required_words": demand, "score": length_score(demand, words),
                      "type": "ruler", "language": "en", "length_ratio": words / demand})
    def task(name, samples, **aggregates):
        return {"task": name, "n": len(samples), **aggregates, "samples": samples}

    longen_types = {k: float(np.mean([s["score"] for s in longen if s["type"] == k]))
                    for k in ("about", "range", "above", "below")}
    scores = {"model": model, "tasks": {
        "longbench_write_en_mini": task("longbench_write_en_mini", lbw,
                                        S_l=round(float(np.mean([s["score"] for s in lbw])), 1)),
        "longen_mini": task("longen_mini", longen, overall=float(np.mean([s["score"] for s in longen])),
                            **longen_types),
        "longwrite_ruler_mini": task("longwrite_ruler_mini", ruler, words=float(np.mean([s["words"] for s in ruler])),
                                     length_ratio=float(np.mean([s["length_ratio"] for s in ruler])),
                                     S_l=float(np.mean([s["score"] for s in ruler])), by_length={}),
    }}
    judged = []
    for sample in lbw:
        if sample["doc_id"] in judge_failure_ids:
            judged.append({"doc_id": sample["doc_id"], "scores": {}, "quality": None, "error": "reply was not JSON"})
            continue
        quality = quality_level + 4 * np.log(sample["words"] + 1) + rng.normal(0, 4)
        judged.append({"doc_id": sample["doc_id"], "scores": {"Relevance": 4}, "quality": float(quality),
                       "error": None})
    ok = [s["quality"] for s in judged if s["quality"] is not None]
    judgements = {"judge": {"model": "qwen2.5-7b-instruct", "rubric": "longbench_write"}, "tasks": {
        "longbench_write_en_mini": {"S_q": float(np.mean(ok)) if ok else None, "n": len(judged),
                                    "failures": len(judged) - len(ok), "samples": judged}}}
    if train_stats is not None:  # what selflengthen.lora writes besides the numbers
        train_stats = {**train_stats, "base_model": "/checkpoints/smollm2-135m", "config": {"lora_r": 16}}
    run = {"model": model, "model_path": f"/checkpoints/{model}", "arm": arm, "iteration": iteration,
           "train_stats": train_stats, "tasks": list(scores["tasks"]),
           "decoding": {name: {**DECODING, "max_gen_toks": 1280} for name in scores["tasks"]},
           "created": "2026-11-25T12:00:00+00:00"}
    write_json(out / "run.json", run)
    write_json(out / "scores.json", scores)
    write_json(out / "judgements.json", judgements)
    return out


def make_experiment(root: Path, answer: str | None = None) -> list[Path]:
    """All five run directories; ``answer`` becomes the first LongBench-Write response of every model."""
    return [make_run_dir(root, model, arm, iteration, reach, quality, stats, seed, answer)
            for seed, (model, arm, iteration, reach, quality, stats) in enumerate(MODELS)]
