"""What a task's YAML declares about itself, read as data: `metadata.primary_metric`, the one score a
regression check gates on (leaderboard/check.py), written into scores.json by `score_predictions`.

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
