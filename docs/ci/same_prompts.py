"""Refuse a CI comparison whose candidate answered other prompts than the committed baseline.

    python docs/ci/same_prompts.py BASELINE_SCORES.json CANDIDATE_SCORES.json

`selflengthen check` pairs prompts by doc_id. A doc_id names a prompt only within one copy of the benchmark
files: with other data files (another version, another selection) the same doc_id holds another prompt and
the paired test would compare unrelated answers without a word. This compares, per task, the doc_ids and
prompt texts of two scores.json files (docs/run_directory.md) and exits 0 when they are the same, 2 (one
`error:` line, like every unusable input of the harness) when a task, doc_id or prompt differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def prompts(path: Path) -> dict[str, dict]:
    """{task: {doc_id: prompt}} of a scores.json file."""
    scores = json.loads(Path(path).read_text(encoding="utf-8"))
    return {task: {sample["doc_id"]: sample["prompt"] for sample in entry["samples"]}
            for task, entry in scores["tasks"].items()}


def difference(baseline: dict[str, dict], candidate: dict[str, dict]) -> str | None:
    """The first way the candidate's prompts differ from the baseline's, or None."""
    if sorted(baseline) != sorted(candidate):
        return f"tasks differ: baseline {sorted(baseline)}, candidate {sorted(candidate)}"
    for task in sorted(baseline):
        if sorted(baseline[task], key=str) != sorted(candidate[task], key=str):
            return (f"{task}: the candidate answered {len(candidate[task])} prompts, the baseline "
                    f"{len(baseline[task])}, or other doc_ids (run the profile unchanged: examples/ci.yaml)")
        for doc_id, prompt in baseline[task].items():
            if candidate[task][doc_id] != prompt:
                return (f"{task} doc_id {doc_id}: the candidate's prompt is not the baseline's (other benchmark "
                        f"files than docs/ci/long-output.yml's checksums?)")
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python docs/ci/same_prompts.py BASELINE_SCORES.json CANDIDATE_SCORES.json", file=sys.stderr)
        return 2
    try:
        found = difference(prompts(Path(argv[0])), prompts(Path(argv[1])))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        print(f"error: cannot read the prompts of {argv[0]} and {argv[1]}: {error!r}", file=sys.stderr)
        return 2
    if found is not None:
        print(f"error: {found}", file=sys.stderr)
        return 2
    print(f"same prompts: {', '.join(f'{task} {len(ids)}' for task, ids in sorted(prompts(Path(argv[0])).items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
