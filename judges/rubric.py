"""Rubrics as data: dimensions, scale, gap policy and prompt template, loaded from YAML files.

A rubric file is the whole definition of how a judge grades; changing wording bumps `version`,
which is part of every cache key, so old judgements are never reused under a new prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

import yaml

from judges.errors import JudgeError

RUBRIC_DIR = Path(__file__).parent / "rubrics"

_TASK_PREFIXES = {"longbench_write": "longbench_write", "longen": "longen"}


@dataclass(frozen=True)
class Rubric:
    """What a judge is asked and how its numbers become a 0–100 quality."""

    name: str
    version: int
    dimensions: tuple[str, ...]
    scale_min: float
    scale_max: float
    system: str
    template: str
    missing_dimension_score: float | None
    max_missing_dimensions: int

    def messages(self, instruction: str, response: str) -> list[dict[str, str]]:
        """The chat messages that ask the judge to grade `response` to `instruction`."""
        user = Template(self.template).substitute(instruction=instruction, response=response)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def scale_values(self) -> list[int]:
        """The whole-number scores a judge may give: scale_min, scale_min + 1, ..., scale_max."""
        if not (float(self.scale_min).is_integer() and float(self.scale_max).is_integer()):
            raise JudgeError(f"rubric {self.name}: a structured or weighted judge needs a whole-number scale")
        return list(range(int(self.scale_min), int(self.scale_max) + 1))

    def json_schema(self) -> dict:
        """The reply as a JSON schema: every dimension required, an integer of the scale, nothing else."""
        values = self.scale_values()
        return {
            "type": "object",
            "properties": {d: {"type": "integer", "enum": values} for d in self.dimensions},
            "required": list(self.dimensions),
            "additionalProperties": False,
        }

    def to_percent(self, score: float) -> float:
        """Map a score on the rubric's scale linearly onto 0–100 (LongBench-Write: (s − 1)·25)."""
        return (score - self.scale_min) / (self.scale_max - self.scale_min) * 100.0

    def quality(self, scores: dict[str, float]) -> float:
        """A sample's quality: the mean over dimensions of the 0–100 mapped scores."""
        return sum(self.to_percent(scores[d]) for d in self.dimensions) / len(self.dimensions)


def load_rubric(name_or_path: str | Path) -> Rubric:
    """Load a packaged rubric by name (`longbench_write`, `longen`) or a rubric YAML by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RUBRIC_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RUBRIC_DIR.glob("*.yaml")))
        raise JudgeError(f"unknown rubric {str(name_or_path)!r}; packaged rubrics: {known}, or give a .yaml path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        rubric = Rubric(
            name=str(data["name"]),
            version=int(data["version"]),
            dimensions=tuple(str(d) for d in data["dimensions"]),
            scale_min=float(data["scale"]["min"]),
            scale_max=float(data["scale"]["max"]),
            system=str(data["system"]),
            template=str(data["template"]),
            missing_dimension_score=data["missing_dimension_score"],
            max_missing_dimensions=int(data["max_missing_dimensions"]),
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise JudgeError(f"malformed rubric file {path}: {type(exc).__name__}: {exc}") from None
    _check(rubric, path)
    return rubric


def rubric_for_task(task: str) -> str | None:
    """The packaged rubric that grades `task` by its name prefix, or None (e.g. longwrite_ruler)."""
    for prefix, rubric in _TASK_PREFIXES.items():
        if re.match(rf"{prefix}(_|$)", task):
            return rubric
    return None


def _check(rubric: Rubric, path: Path) -> None:
    if rubric.scale_max <= rubric.scale_min:
        raise JudgeError(f"rubric {path}: scale max must exceed scale min")
    if not rubric.dimensions:
        raise JudgeError(f"rubric {path}: no dimensions")
    if "$instruction" not in rubric.template or "$response" not in rubric.template:
        raise JudgeError(f"rubric {path}: the template must contain $instruction and $response")
    gap = rubric.missing_dimension_score
    if gap is not None and not rubric.scale_min <= gap <= rubric.scale_max:
        raise JudgeError(f"rubric {path}: missing_dimension_score {gap} is outside the scale")
    if gap is None and rubric.max_missing_dimensions:
        raise JudgeError(f"rubric {path}: max_missing_dimensions needs a missing_dimension_score")
