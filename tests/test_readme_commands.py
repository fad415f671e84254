"""README command 2 is what CI runs: `.ci/run` ends with the same test command, character for character."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_command(number: int) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^# {number}\. .*\n(.+)$", text, re.MULTILINE)
    assert match, f"README has no command {number}"
    return match.group(1).strip()


def test_ci_runs_readme_command_2s_test_command_character_for_character():
    test_command = readme_command(2).split(" && ")[-1]
    assert test_command.startswith("SELFLENGTHEN_DATA_DIR=../shared/data python -m pytest")
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert test_command in ci_lines

