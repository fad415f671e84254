"""`harness/` in rooms by concern, with imports flowing one way: the CLI on top, then the run graph, then
scoring and synthesis, then serving; no other package of the project imports `harness` (#37 item 3)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BELOW = {  # what each room of harness/ may import (besides the shared top-level modules: config, errors)
    "cli": {"run", "scoring", "serving", "synthesis", "tables"},
    "run": {"scoring", "serving", "synthesis"},
    "scoring": {"serving"},
    "synthesis": {"serving"},
    "serving": set(),
    "tables": set(),
    "config": set(),
    "errors": set(),
}
SHARED = {"config", "errors"}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def room(path: Path) -> str:
    parts = path.relative_to(ROOT / "harness").parts
    return parts[0] if len(parts) > 1 else path.stem


@pytest.mark.parametrize("path", sorted((ROOT / "harness").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_room_of_harness_imports_only_the_rooms_below_it(path):
    if room(path) == "__init__":
        return
    reached = {name.split(".")[1] for name in imported(path) if name.startswith("harness.")}
    assert reached - {room(path)} - SHARED <= BELOW[room(path)], path


def test_every_room_says_in_one_line_what_lives_there():
    for package in sorted(p.parent for p in (ROOT / "harness").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "\n" not in doc.strip(), package
        assert package.name in BELOW, f"{package.name} is a room the layout test does not know"


@pytest.mark.parametrize("package", ["selflengthen", "tasks", "judges", "leaderboard", "infra"])
def test_no_other_package_imports_harness(package):
    for path in (ROOT / package).rglob("*.py"):
        assert not {name for name in imported(path) if name == "harness" or name.startswith("harness.")}, path
