"""The run directories of tests/leaderboard_runs.py with degeneration fields, scored by tasks/scoring.py.

Each model loops on a share of its answers that falls with training (the base on 4 prompts of 5, iteration 3
on 1 of 5, backtranslation on 2 of 5); a looping answer repeats one sentence and was cut by the token cap, the
others are distinct words ending a sentence. LongBench-Write answers carry the endpoint's finish reason; the
other tasks' do not (unknown), as with answers scored from a file without one. Models can be renamed to what
`selflengthen run` calls them.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.scoring import degeneration, family_of
from tests.leaderboard_runs import make_experiment

LOOPS_IN_5 = {"smollm2-135m": 4, "sl-iter1": 3, "sl-iter2": 2, "sl-iter3": 1, "backtranslation": 2}
RUN_NAMES = {"smollm2-135m": "base", "sl-iter1": "self_lengthen/iter_1", "sl-iter2": "self_lengthen/iter_2",
             "sl-iter3": "self_lengthen/iter_3", "backtranslation": "backtranslation"}
LOOP = "The story went on and on and the sky was blue again. "


def answer(loops: bool, words: int) -> str:
    """A loop cut mid-sentence after ``words`` words, or as many distinct words ending a sentence."""
    if loops:
        return " ".join((LOOP * (words // 12 + 1)).split()[:words])
    return " ".join("w" + "".join(chr(97 + int(d)) for d in str(i)) for i in range(max(words, 1))) + "."


def make_degenerate_experiment(root: Path, renamed: bool = False) -> list[Path]:
    """The five run directories, every sample with the degeneration fields; ``renamed``: experiment names."""
    runs = make_experiment(root)
    for run in runs:
        model = run.name
        scores = json.loads((run / "scores.json").read_text(encoding="utf-8"))
        for task, entry in scores["tasks"].items():
            for i, sample in enumerate(entry["samples"]):
                loops = i % 5 < LOOPS_IN_5[model]
                reason = ("length" if loops else "stop") if task.startswith("longbench_write") else None
                sample["response"] = answer(loops, min(sample["words"], 400))
                sample.update(degeneration(family_of(task), sample["response"], reason))
        (run / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
        if renamed:
            info = json.loads((run / "run.json").read_text(encoding="utf-8"))
            (run / "run.json").write_text(json.dumps(info | {"model": RUN_NAMES[model]}), encoding="utf-8")
    return runs
