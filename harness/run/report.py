"""What an experiment cost and yielded, as Markdown: the facts a reader needs beside its leaderboard.

`selflengthen run` leaves them scattered: each stage's wall time in its marker, each Self-Lengthen
iteration's request and filter counts in `synthesis.json`, each baseline's in `stats.json`. This collects
them into three tables (wall time per stage, synthesis yield per iteration, baseline yield), a table of
rejections per filter and one of failed requests per step (kept apart, so an outage never reads as the
model's judgement), so a null result comes with the numbers that explain it. It reads only files.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from harness.errors import UserError
from infra.journal import read_json
from leaderboard.render_markdown import md_text

# Stage-name prefixes in the order `run` executes them; anything else sorts last.
_STAGE_ORDER = ("self_lengthen/", "backtranslation/", "imitation/", "score/", "judge/", "judge_repeat/",
                "judge_pairwise/", "leaderboard")
_SYNTHESIS_COLUMNS = {
    "instructions": "self-instructed instructions kept", "initial_answers": "initial answers",
    "extended_answers": "extended answers", "generator_examples": "Generator examples",
    "extender_examples": "Extender examples",
}
_BASELINE_COLUMNS = {"items": "items tried", "samples": "training examples", "answer_words_mean": "mean answer words"}
_ITERATION_FOLDER = re.compile(r"iter_([0-9]+)")
# The fields each file's tables read: numbers, and mappings of names to numbers. A value of another type
# is refused with the file and field named (the files are ours, but a hand edit or a bad merge happens).
_NUMBER_FIELDS = {"synthesis": (*_SYNTHESIS_COLUMNS, "seconds"), "stats": (*_BASELINE_COLUMNS, "seconds"),
                  "marker": ("seconds",)}
_COUNTS_FIELDS = {"synthesis": ("requests", "rejections"), "stats": ("requests", "rejections", "outcomes"),
                  "marker": ()}


def experiment_report(out_dir: Path) -> str:
    """The Markdown report of the experiment written under `out_dir` (its `out_dir` setting)."""
    if not (out_dir / "experiment.json").is_file() and not (out_dir / "train").is_dir():
        raise UserError(f"{out_dir} holds no experiment (no experiment.json, no train/); "
                        "give the out_dir of a `selflengthen run`")
    markers = _stage_markers(out_dir)
    iterations = _synthesis_per_iteration(out_dir, markers)
    baselines = {arm: _read(out_dir / "train" / arm / "stats.json", "stats")
                 for arm in ("backtranslation", "imitation") if (out_dir / "train" / arm / "stats.json").is_file()}
    lines = [f"# Experiment report: {md_text(out_dir.name)}", ""]
    lines += _stage_table(markers)
    if iterations:
        lines += _synthesis_table(iterations)
    if baselines:
        lines += _baseline_table(baselines)
    sources = {f"iteration {k}": s for k, s in iterations.items()} | baselines
    if any(s.get("rejections") for s in sources.values()):
        lines += _rejection_table(sources)
    return "\n".join(lines).rstrip() + "\n"


def _read(path: Path, kind: str) -> dict:
    """A JSON object whose fields the tables read have the types they need, or a UserError naming the field."""
    data = read_json(path, UserError)
    for key in _NUMBER_FIELDS[kind]:
        _require_number(path, key, data.get(key))
    for key in _COUNTS_FIELDS[kind]:
        counts = data.get(key)
        if counts is not None and not isinstance(counts, dict):
            raise UserError(f"{path}: {key!r} must be a JSON object of counts, got {type(counts).__name__}")
        for name, value in (counts or {}).items():
            _require_number(path, f"{key}.{name}", value)
    return data


def _require_number(path: Path, field: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise UserError(f"{path}: {field!r} must be a finite number, got {json.dumps(value)[:40]}")


def _synthesis_per_iteration(out_dir: Path, markers: list[dict]) -> dict[int, dict]:
    """Each iteration's synthesis.json, its `seconds` replaced by the synthesis stage's where `run` recorded one.

    One truth for both tables: the stage marker holds the stage's wall time summed over every attempt.
    """
    seconds = {m["name"]: m.get("seconds") for m in markers}
    found = {}
    for path in (out_dir / "train" / "self_lengthen").glob("iter_*/synthesis.json"):
        match = _ITERATION_FOLDER.fullmatch(path.parent.name)
        if match:  # ASCII digits only: iter_² is no iteration folder
            k = int(match.group(1))
            synthesis = _read(path, "synthesis")
            staged = seconds.get(f"self_lengthen/iter_{k}/synthesis")
            found[k] = synthesis if staged is None else {**synthesis, "seconds": staged}
    return dict(sorted(found.items()))


def _stage_rank(name: str) -> tuple[int, bool, str]:
    """Run order: prefix, then the base arm before the others (it is scored and judged first), then name."""
    rank = next((i for i, prefix in enumerate(_STAGE_ORDER) if name.startswith(prefix)), len(_STAGE_ORDER))
    return rank, not name.endswith("/base"), name


def _stage_markers(out_dir: Path) -> list[dict]:
    """Every stage marker (`stage.json`, `<kind>.<task>.stage.json`) outside the `.stale` folders, in run order."""
    markers = [_read(p, "marker") for p in sorted(out_dir.rglob("*stage.json"))
               if (p.name == "stage.json" or p.name.endswith(".stage.json"))
               and not any(part.endswith(".stale") for part in p.relative_to(out_dir).parts)]
    return sorted((m for m in markers if isinstance(m.get("name"), str)), key=lambda m: _stage_rank(m["name"]))


def _stage_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    body = [[md_text(m["name"]), _number(m.get("seconds")), "yes" if m.get("finished") else "**no**"] for m in rows]
    about = ("Seconds of each stage, summed over an interrupted attempt and its resume. Stages run by one call "
             "show the wall time they shared: a checkpoint's scoring stages (one per task, one lm-eval call) and "
             "the judging stages of one judge server (every checkpoint's, judged concurrently).")
    return ["## Wall time per stage", "", about, ""] + _table(["stage", "seconds", "finished"], body) + [""]


def _synthesis_table(iterations: dict[int, dict]) -> list[str]:
    header = ["iteration", *_SYNTHESIS_COLUMNS.values(), "requests sent", "request errors", "seconds",
              "Generator examples per CPU-hour"]
    body = []
    for k, s in iterations.items():
        requests = s.get("requests") or {}
        seconds = s.get("seconds")
        examples = s.get("generator_examples")
        per_hour = examples * 3600 / seconds if seconds and examples is not None else None
        body.append([str(k), *(_number(s.get(key)) for key in _SYNTHESIS_COLUMNS), _number(requests.get("sent")),
                     _number(requests.get("errors")), _number(seconds), _number(per_hour)])
    about = ("Counts, requests and seconds are totals over every attempt of an iteration (an interrupted one and "
             "its resume); seconds are the synthesis stage's wall time, as in the table above, and per CPU-hour "
             "is per hour of it (the machine's cores together).")
    return ["## Self-Lengthen synthesis per iteration", "", about, ""] + _table(header, body) + [""]


def _baseline_table(baselines: dict[str, dict]) -> list[str]:
    body = []
    for arm, s in baselines.items():
        outcomes = ", ".join(f"{md_text(k)} {v}" for k, v in sorted((s.get("outcomes") or {}).items()))
        body.append([md_text(arm), *(_number(s.get(key)) for key in _BASELINE_COLUMNS), outcomes or "-",
                     _number((s.get("requests") or {}).get("sent")), _number(s.get("seconds"))])
    return ["## Baseline training data", ""] \
        + _table(["arm", *_BASELINE_COLUMNS.values(), "outcomes per item", "requests sent", "seconds"], body) + [""]


NOT_REJECTIONS = frozenset({"extend.enrichment_discarded"})
"""Counted in the same tally, but no reply was turned away: the Extender went on with the continuation alone."""


def _is_request_error(name: str) -> bool:
    """Whether a tally entry counts failed requests (`generate.error`, `self_instruct.judge.error`, ...): no
    reply came back, so it is an outage, not a judgement of the model's or a filter's."""
    return name.endswith(".error")


def _rejection_table(sources: dict[str, dict]) -> list[str]:
    counted = sorted({f for s in sources.values() for f in (s.get("rejections") or {})})
    header = ["filter", *(md_text(name) for name in sources)]

    def rows(names):
        return [[md_text(f), *(_number((s.get("rejections") or {}).get(f, 0)) for s in sources.values())] for f in names]

    about = "How many replies each filter or parse step turned away (one reply can be retried and counted again)."
    lines = ["## Rejections per filter", "", about, ""] + _table(header, rows(
        [f for f in counted if f not in NOT_REJECTIONS and not _is_request_error(f)])) + [""]
    others = [f for f in counted if f in NOT_REJECTIONS]
    if others:
        note = ("Counted alongside, not rejections: `extend.enrichment_discarded` is an enrichment with no leading "
                "part to keep, after which the candidate is the continuation alone.")
        lines += [note, ""] + _table(header, rows(others)) + [""]
    errors = [f for f in counted if _is_request_error(f)]
    if errors:
        note = ("Requests that failed (no reply came back: the server or the connection, not the model's "
                "judgement), per step that sent them.")
        lines += ["## Failed requests per step", "", note, ""] + _table(["step", *header[1:]], rows(errors)) + [""]
    return lines


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
