"""Imports flow one way (README, "How it fits together"): each package imports only the ones below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = {"infra", "tasks", "selflengthen", "judges", "leaderboard", "harness"}
ALLOWED = {
    "infra": set(),
    "tasks": {"infra"},
    "selflengthen": {"infra", "tasks"},
    "judges": {"infra"},
    "leaderboard": {"infra"},
    "harness": OURS - {"harness"},
}


def imported_packages(path: Path) -> set[str]:
    """Our top-level packages that `path` imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_packages_below_it(package):
    wrong = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) - ALLOWED[package] - {package})
        for path in sorted((REPO / package).rglob("*.py"))
    }
    assert {file: names for file, names in wrong.items() if names} == {}
