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



_INCLUDE_LINE = re.compile(r"^include:\s*(\S+)\s*$", re.MULTILINE)


def task_definition(task: str) -> tuple[Path, ...]:
    """The YAML file that defines `task` and the files it includes, in order: what lm-eval reads of the task
    (its Python hooks live beside them, in `task_modules`)."""
    found = next((path for path in sorted(TASKS_DIR.glob("*/*.yaml"))
                  if task in _TASK_LINE.findall(path.read_text(encoding="utf-8"))), None)
    if found is None:
        raise ValueError(f"no task YAML under {TASKS_DIR} defines {task!r}")
    chain = [found]
    while (include := _INCLUDE_LINE.search(chain[-1].read_text(encoding="utf-8"))) and len(chain) < 16:
        chain.append(chain[-1].parent / include.group(1))
    return tuple(chain)


def task_modules(task: str) -> tuple[str, ...]:
    """The Python modules in `task`'s folder (its dataset and `process_results` hooks), as import names."""
    folder = task_definition(task)[0].parent
    return tuple(f"tasks.{folder.name}.{path.stem}" for path in sorted(folder.glob("*.py")) if path.stem != "__init__")
