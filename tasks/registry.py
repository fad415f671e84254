"""The names of the tasks in this folder, read from their lm-eval YAML files without importing lm-eval.

A config that names a task is checked against this list before any work starts; lm-eval's own task
manager (seconds to build) is only asked once generation begins.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

TASKS_DIR = Path(__file__).parent
_TASK_LINE = re.compile(r"^task:\s*([A-Za-z0-9_]+)\s*$", re.MULTILINE)


@lru_cache(maxsize=1)
def task_names() -> tuple[str, ...]:
    """Every `task:` name defined by a YAML file under tasks/, sorted."""
    names = set()
    for path in TASKS_DIR.glob("*/*.yaml"):
        names.update(_TASK_LINE.findall(path.read_text(encoding="utf-8")))
    return tuple(sorted(names))


def unknown_task(tasks: list[str]) -> str | None:
    """The first name in `tasks` that no task YAML defines, else None."""
    known = set(task_names())
    return next((t for t in tasks if t not in known), None)

