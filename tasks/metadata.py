"""What a task's YAML declares about itself, read as data: `metadata.primary_metric`, the one score a
regression check gates on (leaderboard/check.py), written into scores.json by `score_predictions`, and
`metadata.demand_ranges`, the length-demand ranges the leaderboard reports that score in (the harness hands
them to leaderboard/build.py, which may not import this package).

The YAML is read the way lm-eval reads it (an `include:`d file first, the task's own top-level keys
winning, so each variant declares its own `metadata`), without importing the functions its
`!function` tags name.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

TASKS_DIR = Path(__file__).resolve().parent


class _TaskYamlLoader(yaml.SafeLoader):
    """SafeLoader that keeps a `!function utils.x` tag as its text."""


_TaskYamlLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _load(path: Path) -> dict:
    config = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYamlLoader)  # noqa: S506 (safe loader)
    include = config.pop("include", None)
    return _load(path.parent / include) | config if include else config


@functools.cache
def task_config(task: str, family: str) -> dict:
    """tasks/<family>/<task>.yaml as lm-eval reads it, its `include:` merged."""
    return _load(TASKS_DIR / family / f"{task}.yaml")


def task_metadata(task: str, family: str) -> dict:
    """The `metadata:` mapping of tasks/<family>/<task>.yaml."""
    return dict(task_config(task, family).get("metadata") or {})


def primary_metric(task: str, family: str) -> str:
    """The aggregate the task declares as its primary metric (`metadata.primary_metric`), one it reports (in its
    `metric_list`): a regression check gates on it, so a name the task never writes would gate on nothing."""
    metric = task_metadata(task, family).get("primary_metric")
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"tasks/{family}/{task}.yaml declares no metadata.primary_metric")
    reported = [entry.get("metric") for entry in task_config(task, family).get("metric_list") or []
                if isinstance(entry, dict)]
    if metric not in reported:
        raise ValueError(f"tasks/{family}/{task}.yaml: metadata.primary_metric {metric!r} is not in its metric_list "
                         f"({', '.join(map(str, reported)) or 'empty'})")
    return metric


def demand_ranges(task: str, family: str) -> list[list[int]]:
    """The task's `metadata.demand_ranges`: [low, high] word bounds, ascending and not overlapping (each range
    holds its low end, the last its high end too); [] when the task declares none."""
    ranges = task_metadata(task, family).get("demand_ranges") or []
    where = f"tasks/{family}/{task}.yaml: metadata.demand_ranges"
    previous_high = None
    for bounds in ranges:
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(type(b) is int and b >= 0 for b in bounds)
                and bounds[0] < bounds[1]):
            raise ValueError(f"{where}: each range must be [low, high], whole numbers 0 <= low < high, got {bounds!r}")
        if previous_high is not None and bounds[0] < previous_high:
            raise ValueError(f"{where}: ranges must ascend without overlapping, got {ranges!r}")
        previous_high = bounds[1]
    return [list(bounds) for bounds in ranges]


def declared_demand_ranges() -> dict[str, list[list[int]]]:
    """{task: its demand_ranges} for every task YAML under tasks/ that declares some."""
    found = {}
    for path in sorted(TASKS_DIR.glob("*/*.yaml")):
        task = task_config(path.stem, path.parent.name).get("task")
        ranges = demand_ranges(path.stem, path.parent.name)
        if isinstance(task, str) and ranges:
            found[task] = ranges
    return found
