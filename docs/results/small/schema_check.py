"""Would schema-constrained self-curation ratings and AgentWrite plans keep more of the small run's candidates?

    SELFLENGTHEN_DATA_DIR=... python docs/results/small/schema_check.py docs/results/small/state/runs_small/train \
        --config examples/small.yaml > RESULT.md

Reads the run's backtranslation folder (`pairs.jsonl`: every pair that reached self-curation, its instruction
rebuilt from the run's last instruction reply in `requests.jsonl`) and imitation folder (`answers.jsonl`: every
instruction). Runs the arms' own steps (`rate_pair`, `write_plan`) again with the base on the in-process engine
and the run's settings, once with `backtranslation.constrained_rating` / `imitation.constrained_plan` off and
once on, every request seeded from the arm's seed and its key, and prints the yields of each pass. The plan and
its reading: `schema_check.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # run as a script from anywhere in the repository
    sys.path.insert(0, str(ROOT))

from harness.config import from_dict, load_yaml  # noqa: E402
from harness.serving.models import resolve_model  # noqa: E402
from infra.journal import read_jsonl  # noqa: E402
from selflengthen.baselines import BacktranslationConfig, ImitationConfig  # noqa: E402
from selflengthen.baselines.backtranslation import clean_instruction, rate_pair  # noqa: E402
from selflengthen.baselines.excerpt import beginning  # noqa: E402
from selflengthen.baselines.imitation import write_plan  # noqa: E402
from selflengthen.baselines.runner import BaselineRun  # noqa: E402

RATED_OUTCOMES = ("kept", "low_rating", "unrated")


def rated_pairs(folder: Path) -> list[tuple[str, str, str, int]]:
    """(key, instruction as rated, fitted text, its words) of every pair that reached self-curation, in the file's order.

    The rated instruction is the one before its length demand: the run's last instruction reply, cleaned."""
    replies = {record["key"]: record["text"] for record in read_jsonl(folder / "requests.jsonl")}
    pairs = []
    for record in read_jsonl(folder / "pairs.jsonl"):
        if record["outcome"] in RATED_OUTCOMES:
            asked = [key for key in replies if key.startswith(f"{record['key']}/instruction/")]
            last = max(asked, key=lambda key: int(key.rsplit("/", 1)[1]))
            pairs.append((record["key"], clean_instruction(replies[last]), record["answer"], record["words"]))
    return pairs


def planned_instructions(folder: Path) -> list[tuple[str, str, str]]:
    """(key, lang, instruction) of every instruction the imitation teacher was asked to plan."""
    return [(record["key"], record["lang"], record["instruction"]) for record in read_jsonl(folder / "answers.jsonl")]


def rating_yields(ratings: list[int | None], tally: Counter, min_rating: int) -> dict[str, object]:
    """Replies parsed (each rated pair's last reply parsed; each unparsed one was retried), pairs rated and kept,
    and the most common rating with its share of the rated pairs."""
    rated = [rating for rating in ratings if rating is not None]
    common, count = Counter(rated).most_common(1)[0] if rated else ("-", 0)
    return {"replies parsed": f"{len(rated)} of {len(rated) + tally['rating.unparsed'] + tally['rating.error']}",
            "pairs rated": f"{len(rated)} of {len(ratings)}",
            "pairs kept": f"{sum(rating >= min_rating for rating in rated)} of {len(ratings)}",
            "most common rating": f"{common} ({count / len(rated):.0%})" if rated else "-"}


def plan_yields(plans: list, tally: Counter) -> dict[str, object]:
    """Plan replies parsed (usable ones and those with too few or too many sections), instructions with a usable
    plan, and the median sections and planned words of those plans."""
    usable = [plan for plan in plans if plan is not None]
    parsed = len(usable) + tally["plan.too_few_sections"] + tally["plan.too_many_sections"]
    replies = parsed + tally["plan.unparsed"] + tally["plan.error"]
    return {"replies parsed": f"{parsed} of {replies}", "usable plans": f"{len(usable)} of {len(plans)}",
            "median sections": statistics.median(len(plan) for plan in usable) if usable else "-",
            "median planned words": statistics.median(sum(s.words for s in plan) for plan in usable) if usable else "-"}


async def replay_ratings(backend, pairs, config: BacktranslationConfig, work: Path) -> dict[str, object]:
    run = BaselineRun(backend, work, config.max_in_flight, None, config.seed)
    try:
        ratings = await asyncio.gather(*(
            rate_pair(run.model, instruction, beginning(text, config.shown_words), words, key, config, run.tally)
            for key, instruction, text, words in pairs))
    finally:
        run.close()
    return rating_yields(list(ratings), run.tally, config.min_rating)


async def replay_plans(backend, instructions, config: ImitationConfig, work: Path) -> dict[str, object]:
    run = BaselineRun(backend, work, config.max_in_flight, None, config.seed)
    try:
        plans = await asyncio.gather(*(write_plan(run.model, instruction, lang, f"answer/{key}", config, run.tally)
                                       for key, lang, instruction in instructions))
    finally:
        run.close()
    return plan_yields(list(plans), run.tally)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train_dir", type=Path, help="the run's train folder (backtranslation/ and imitation/)")
    parser.add_argument("--config", type=Path, required=True, help="the experiment YAML the run used")
    args = parser.parse_args()
    from infra.inprocess import InProcessBackend, InProcessConfig  # torch: only when work starts

    raw = load_yaml(args.config)
    seed = raw.get("seed", 0)
    rating = from_dict(BacktranslationConfig, raw["backtranslation"])
    rating = dataclasses.replace(rating, seed=rating.seed + seed)
    plan = from_dict(ImitationConfig, raw["imitation"])
    plan = dataclasses.replace(plan, seed=plan.seed + seed)
    pairs = rated_pairs(args.train_dir / "backtranslation")
    instructions = planned_instructions(args.train_dir / "imitation")
    model = resolve_model(raw.get("model", "smollm2-135m"))
    rows: dict[str, dict[str, dict[str, object]]] = {"ratings": {}, "plans": {}}
    with InProcessBackend(InProcessConfig(Path(model), max_batch_size=32, precision="fp32")) as backend, \
            tempfile.TemporaryDirectory() as scratch:
        for flag in (False, True):
            name = "schema" if flag else "free text"
            rows["ratings"][name] = asyncio.run(replay_ratings(
                backend, pairs, dataclasses.replace(rating, constrained_rating=flag), Path(scratch) / f"bt-{flag}"))
            rows["plans"][name] = asyncio.run(replay_plans(
                backend, instructions, dataclasses.replace(plan, constrained_plan=flag), Path(scratch) / f"im-{flag}"))
    lines = [f"# Schema check: {len(pairs)} rated pairs and {len(instructions)} planned instructions of "
             f"{args.train_dir}"]
    for arm, passes in rows.items():
        columns = list(next(iter(passes.values())))
        lines += ["", f"| {arm} | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {name} | {' | '.join(str(values[c]) for c in columns)} |" for name, values in passes.items()]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
