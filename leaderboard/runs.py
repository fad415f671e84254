"""Read one run directory (docs/run_directory.md) into plain dicts, with one-line errors for bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from leaderboard import validate
from leaderboard.errors import LeaderboardError


@dataclass(frozen=True)
class RunDir:
    """The files of one scored checkpoint: run.json, scores.json and, when judged, judgements.json and (pairwise
    judging against the base arm) pairwise.json."""

    path: Path
    run: dict
    scores: dict
    judgements: dict | None
    pairwise: dict | None = None

    @property
    def model(self) -> str:
        return self.run["model"]


def read_json(path: Path) -> dict:
    """A JSON object from a file, or a LeaderboardError naming the file and what is wrong with it."""
    if not path.is_file():
        raise LeaderboardError(f"{path}: file not found")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LeaderboardError(f"{path}: not valid JSON ({error})") from None
    except OSError as error:
        raise LeaderboardError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not isinstance(value, dict):
        raise LeaderboardError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def load_run_dir(path: Path) -> RunDir:
    """Read and validate a run directory; judgements.json and pairwise.json are optional, run.json and scores.json
    are not."""
    path = Path(path)
    if not path.is_dir():
        raise LeaderboardError(f"{path}: run directory not found")
    run = read_json(path / "run.json")
    validate.run_file(path / "run.json", run)
    scores = read_json(path / "scores.json")
    validate.scores_file(path / "scores.json", scores)
    judgements = None
    if (path / "judgements.json").exists():
        judgements = read_json(path / "judgements.json")
        validate.judgements_file(path / "judgements.json", judgements)
    pairwise = None
    if (path / "pairwise.json").exists():
        pairwise = read_json(path / "pairwise.json")
        validate.pairwise_file(path / "pairwise.json", pairwise)
    return RunDir(path, run, scores, judgements, pairwise)
