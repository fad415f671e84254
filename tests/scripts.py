"""Load a repository script that is not part of a package (a benchmark, a docs/results analysis) as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def load_script(path: Path, name: str):
    """`path` imported as module `name` (registered in sys.modules, so its dataclasses resolve their types)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
