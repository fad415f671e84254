"""Would a schema-constrained suitability judge keep more of iteration 1's self-instructed candidates?

    python docs/results/small/suitability_check.py docs/results/small/state/runs_small/train/self_lengthen/iter_1 \
        --config examples/small.yaml [--out FILE]

Reads the iteration's request ledger (`requests.jsonl`): every candidate instruction that reached the judge
(`si/<lang>/<slot>/<attempt>/write`, cut to its first paragraph as self-instruct does) and the free-text
reply it got (`.../judge`). Asks the base model the same question again on the in-process engine, once with
the free reply and once with `self_instruct.constrained_judge`, both sampled as the run's judge was and seeded
per candidate, and prints how many each way said yes. The plan and its reading: `suitability_check.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # run as a script from anywhere in the repository
    sys.path.insert(0, str(ROOT))

from harness.config import from_dict, load_yaml  # noqa: E402
from harness.serving.models import resolve_model  # noqa: E402
from infra.rng import item_seed  # noqa: E402
from selflengthen.config import SelfLengthenConfig  # noqa: E402
from selflengthen.prompts import render_prompt  # noqa: E402
from selflengthen.self_instruct import first_paragraph, is_yes, judge_sampling  # noqa: E402


def judged_candidates(ledger: Path) -> list[tuple[str, str, str]]:
    """(key, candidate, the run's free reply) for every candidate the run asked the judge about, in key order."""
    texts = {}
    for line in ledger.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            texts[record["key"]] = record["text"]
    judged = sorted(key.removesuffix("/judge") for key in texts if key.endswith("/judge"))
    return [(key, first_paragraph(texts[f"{key}/write"]), texts[f"{key}/judge"]) for key in judged]


def reply_kind(reply: str, yes: list[str], no: list[str]) -> str:
    """yes, no, or prose (anything else, which self-instruct counts as no)."""
    if is_yes(reply, yes):
        return "yes"
    return "no" if is_yes(reply, no) else "prose"


async def ask_all(backend, candidates, method: SelfLengthenConfig, constrained: bool) -> list[str]:
    asked = dataclasses.replace(method, self_instruct=dataclasses.replace(method.self_instruct,
                                                                          constrained_judge=constrained))
    base = judge_sampling(asked, "en")

    async def ask(key: str, candidate: str) -> str:
        question = render_prompt("judge_instruction", "en", instruction=candidate)
        sampling = dataclasses.replace(base, seed=item_seed(method.seed, f"suitability-check/{key}"))
        return (await backend.chat([{"role": "user", "content": question}], sampling)).text

    return list(await asyncio.gather(*(ask(key, candidate) for key, candidate, _ in candidates)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iteration_dir", type=Path)
    parser.add_argument("--config", type=Path, required=True, help="the experiment YAML the run used")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from infra.inprocess import InProcessBackend, InProcessConfig  # torch: only when work starts

    raw = load_yaml(args.config)
    method = from_dict(SelfLengthenConfig, raw.get("self_lengthen", {}))
    yes, no = method.self_instruct.yes_answers["en"], method.self_instruct.no_answers["en"]
    candidates = judged_candidates(args.iteration_dir / "requests.jsonl")
    model = resolve_model(raw.get("model", "smollm2-135m"))
    with InProcessBackend(InProcessConfig(Path(model), max_batch_size=32, precision="fp32")) as backend:
        free = asyncio.run(ask_all(backend, candidates, method, constrained=False))
        constrained = asyncio.run(ask_all(backend, candidates, method, constrained=True))
    columns = {"the run's free reply": [reply for _, _, reply in candidates], "free, asked again": free,
               "constrained": constrained}
    lines = [f"# Suitability check: {len(candidates)} candidates of {args.iteration_dir}", "",
             "| reply | yes | no | prose (counted as no) |", "|---|---|---|---|"]
    for name, replies in columns.items():
        counts = Counter(reply_kind(reply, yes, no) for reply in replies)
        lines.append(f"| {name} | {counts['yes']} | {counts['no']} | {counts['prose']} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
