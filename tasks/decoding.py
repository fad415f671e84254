"""The decoding each task publishes, read from its YAML's `generation_kwargs` (lm-eval's own place for it).

Running lm-eval on a task folder directly and `selflengthen eval` without a `sampling:` section
decode alike: LongBench-Write and LongWrite-Ruler sample at temperature 0.5 as LongWriter's
`evaluation/pred.py` does, and LonGen, whose reference publishes no evaluation decoding, the same.
"""

from __future__ import annotations

from infra.sampling import SamplingConfig
from tasks.metadata import TASKS_DIR, _load


def task_sampling(task: str) -> SamplingConfig:
    """The decoding `task` publishes as a SamplingConfig (`do_sample: false`: greedy).

    Answer length stays the task's `max_gen_toks`; `max_tokens` keeps its default.
    """
    kwargs = _generation_kwargs(task)
    if not kwargs.get("do_sample", False):
        return SamplingConfig()
    return SamplingConfig(temperature=float(kwargs.get("temperature", 1.0)), top_p=float(kwargs.get("top_p", 1.0)),
                          top_k=kwargs.get("top_k"))


def task_max_gen_toks(task: str) -> int | None:
    """The cap on answer tokens `task` declares (None: lm-eval's default)."""
    return _generation_kwargs(task).get("max_gen_toks")


def _generation_kwargs(task: str) -> dict:
    paths = sorted(TASKS_DIR.glob(f"*/{task}.yaml"))
    if not paths:
        raise KeyError(f"no task file tasks/*/{task}.yaml")
    return dict(_load(paths[0]).get("generation_kwargs") or {})
