"""Type checks for everything the leaderboard reads: run.json, scores.json, judgements.json, leaderboard.json.

A value of the wrong type would otherwise become a blank cell, a traceback, or markup in a view; each check
raises one LeaderboardError line naming the file and the field (``tasks['longen_mini'].samples[3].score``).
"""

from __future__ import annotations

import math
from pathlib import Path

from leaderboard.errors import LeaderboardError

# Sample fields every view and statistic reads as numbers, as true/false (a metric's mean is then a share),
# and as text.
NUMERIC_SAMPLE_FIELDS = ("score", "words", "required_words", "quality", "quality_lc", "repeated_10gram_share",
                         "effective_words")
FLAG_SAMPLE_FIELDS = ("ends_sentence", "ended_at_cap")
TEXT_SAMPLE_FIELDS = ("type", "prompt", "response", "finish_reason")
# train_stats facts that are short texts, not numbers (e.g. matched_budget: "examples: 6, seeded subsample").
TEXT_TRAIN_STATS = ("matched_budget",)
MAX_SAMPLE_MAGNITUDE = 1e12
"""No score, word count or quality comes near this; a sample value beyond it (1.7e308 is finite) would
overflow the bootstrap sums and the length-control fit, so it is refused as unusable input."""


def is_number(value) -> bool:
    """A finite int or float (not a bool, not NaN or infinity: JSON readers accept both)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _fail(path: Path, field: str, expected: str, value) -> None:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise LeaderboardError(f"{path}: {field} must be {expected}, got {shown}")


def number(path: Path, field: str, value, optional: bool = True) -> None:
    if not (is_number(value) or (optional and value is None)):
        _fail(path, field, "a finite number" + " or null" * optional, value)


def count(path: Path, field: str, value, optional: bool = True) -> None:
    if not (is_count(value) or (optional and value is None)):
        _fail(path, field, "a whole number >= 0" + " or null" * optional, value)


def text(path: Path, field: str, value, optional: bool = True, empty: bool = True) -> None:
    if not ((isinstance(value, str) and (empty or value)) or (optional and value is None)):
        _fail(path, field, ("a non-empty string" if not empty else "a string") + " or null" * optional, value)


def flag(path: Path, field: str, value, optional: bool = True) -> None:
    if not (isinstance(value, bool) or (optional and value is None)):
        _fail(path, field, "true or false" + " or null" * optional, value)


def mapping(path: Path, field: str, value, optional: bool = False) -> None:
    if not (isinstance(value, dict) or (optional and value is None)):
        _fail(path, field, "a JSON object" + " or null" * optional, value)


def array(path: Path, field: str, value) -> None:
    if not isinstance(value, list):
        _fail(path, field, "a JSON list", value)


def samples(path: Path, field: str, value, numeric: tuple[str, ...] = ()) -> None:
    """A list of sample objects: unique int or string doc_ids, numbers and texts where the views expect them."""
    array(path, field, value)
    seen = set()
    for i, sample in enumerate(value):
        where = f"{field}[{i}]"
        mapping(path, where, sample)
        doc_id = sample.get("doc_id")
        if not (isinstance(doc_id, str) or is_count(doc_id)):
            _fail(path, f"{where}.doc_id", "a whole number >= 0 or a string", doc_id)
        if doc_id in seen:
            _fail(path, f"{where}.doc_id", "unique within the task", doc_id)
        seen.add(doc_id)
        for name in dict.fromkeys(NUMERIC_SAMPLE_FIELDS + numeric):
            if name not in FLAG_SAMPLE_FIELDS:
                value = sample.get(name)
                number(path, f"{where}.{name}", value)
                if value is not None and abs(value) > MAX_SAMPLE_MAGNITUDE:
                    _fail(path, f"{where}.{name}", f"a number within ±{MAX_SAMPLE_MAGNITUDE:g}", value)
        for name in FLAG_SAMPLE_FIELDS:
            flag(path, f"{where}.{name}", sample.get(name))
        for name in TEXT_SAMPLE_FIELDS:
            text(path, f"{where}.{name}", sample.get(name))


def _task_entries(path: Path, document: dict, field: str = "tasks") -> dict:
    tasks = document.get(field)
    mapping(path, field, tasks)
    for name, entry in tasks.items():
        mapping(path, f"{field}[{name!r}]", entry)
    return tasks


def scores_file(path: Path, document: dict) -> None:
    """scores.json: per task a samples list; an aggregate that names a sample field makes that field numeric."""
    for name, entry in _task_entries(path, document).items():
        listed = entry.get("samples")
        array(path, f"tasks[{name!r}].samples", listed)
        fields = {key for sample in listed if isinstance(sample, dict) for key in sample}
        numeric = tuple(key for key, value in entry.items() if key in fields and is_number(value))
        samples(path, f"tasks[{name!r}].samples", listed, numeric)
        text(path, f"tasks[{name!r}].primary_metric", entry.get("primary_metric"))


def _interval(path: Path, field: str, ci) -> None:
    if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(map(is_number, ci))):
        _fail(path, field, "a list of two finite numbers or null", ci)


def _reasons(path: Path, field: str, reasons) -> None:
    array(path, field, reasons)
    for i, reason in enumerate(reasons):
        text(path, f"{field}[{i}]", reason, optional=False, empty=False)


def _sanity(path: Path, field: str, sanity) -> None:
    """Per degradation (truncated, shuffled, swapped): rate, its interval, the sign test's p-value and n."""
    mapping(path, field, sanity, optional=True)
    for name, numbers in (sanity or {}).items():
        where = f"{field}[{name!r}]"
        mapping(path, where, numbers)
        number(path, f"{where}.rate", numbers.get("rate"))
        _interval(path, f"{where}.ci", numbers.get("ci"))
        number(path, f"{where}.p_value", numbers.get("p_value"))
        flag(path, f"{where}.above_chance", numbers.get("above_chance"))
        count(path, f"{where}.n", numbers.get("n"))


def _agreement(path: Path, field: str, agreement) -> None:
    mapping(path, field, agreement, optional=True)
    if agreement is not None:
        count(path, f"{field}.repeats_n", agreement.get("repeats_n"))
        for name in ("krippendorff_alpha", "spearman", "mean_std"):
            number(path, f"{field}.{name}", agreement.get(name))


def _judge_trust(path: Path, field: str, trust) -> None:
    """judgements.json's ``trust`` of a task (judges/README.md); absent in files written before it existed."""
    mapping(path, field, trust, optional=True)
    if trust is None:
        return
    failures = trust.get("failures")
    mapping(path, f"{field}.failures", failures, optional=True)
    if failures is not None:
        count(path, f"{field}.failures.count", failures.get("count"))
        number(path, f"{field}.failures.rate", failures.get("rate"))
    _sanity(path, f"{field}.sanity", trust.get("sanity"))
    _agreement(path, f"{field}.agreement", trust.get("agreement"))
    flag(path, f"{field}.reliable", trust.get("reliable"))
    if trust.get("unreliable_reasons") is not None:
        _reasons(path, f"{field}.unreliable_reasons", trust["unreliable_reasons"])


def judgements_file(path: Path, document: dict) -> None:
    """judgements.json: per task judged samples (quality null or on the judges' 0–100 scale, whatever the rubric's:
    judges/rubric.py maps it), an optional failure count and trust."""
    for name, entry in _task_entries(path, document).items():
        samples(path, f"tasks[{name!r}].samples", entry.get("samples"))
        for i, sample in enumerate(entry["samples"]):
            quality = sample.get("quality")
            if quality is not None and not 0 <= quality <= 100:
                _fail(path, f"tasks[{name!r}].samples[{i}].quality", "a number from 0 to 100 or null", quality)
        count(path, f"tasks[{name!r}].failures", entry.get("failures"))
        _judge_trust(path, f"tasks[{name!r}].trust", entry.get("trust"))


def _win_rates(path: Path, field: str, entry: dict) -> None:
    """A task's pairwise numbers (judges/pairwise.py): counts, rates from 0 to 1 or null, and their intervals."""
    count(path, f"{field}.n", entry.get("n"))
    count(path, f"{field}.failures", entry.get("failures"))
    for name in ("win_rate", "lc_win_rate", "position_bias_rate"):
        rate = entry.get(name)
        number(path, f"{field}.{name}", rate)
        if rate is not None and not 0 <= rate <= 1:
            _fail(path, f"{field}.{name}", "a number from 0 to 1 or null", rate)
    for name in ("win_rate_ci", "lc_win_rate_ci"):
        _interval(path, f"{field}.{name}", entry.get(name))


def pairwise_file(path: Path, document: dict) -> None:
    """pairwise.json: the reference model's name, the judge, and per task the win rates the views show."""
    text(path, "reference", document.get("reference"))
    judge = document.get("judge")
    mapping(path, "judge", judge, optional=True)
    text(path, "judge.model", (judge or {}).get("model"))
    for name, entry in _task_entries(path, document).items():
        _win_rates(path, f"tasks[{name!r}]", entry)


def run_file(path: Path, run: dict) -> None:
    """run.json: the display name, and the arm, iteration and training facts the views show."""
    text(path, "model", run.get("model"), optional=False, empty=False)
    text(path, "model_path", run.get("model_path"))
    text(path, "arm", run.get("arm"))
    count(path, "iteration", run.get("iteration"))
    mapping(path, "train_stats", run.get("train_stats"), optional=True)


def _metric(path: Path, field: str, spec) -> None:
    mapping(path, field, spec)
    text(path, f"{field}.field", spec.get("field"), optional=False, empty=False)
    text(path, f"{field}.type", spec.get("type"))
    number(path, f"{field}.value", spec.get("value"))
    count(path, f"{field}.n", spec.get("n"))
    flag(path, f"{field}.higher_is_better", spec.get("higher_is_better"))
    _interval(path, f"{field}.ci", spec.get("ci"))
    demand = spec.get("demand")
    mapping(path, f"{field}.demand", demand, optional=True)
    if demand is not None:
        number(path, f"{field}.demand.low", demand.get("low"), optional=False)
        number(path, f"{field}.demand.high", demand.get("high"), optional=False)
        flag(path, f"{field}.demand.high_included", demand.get("high_included"), optional=False)
    for key in ("vs_base", "vs_previous"):
        test = spec.get(key)
        mapping(path, f"{field}.{key}", test, optional=True)
        if test is not None:
            number(path, f"{field}.{key}.diff", test.get("diff"), optional=False)
            number(path, f"{field}.{key}.p", test.get("p"), optional=False)
            count(path, f"{field}.{key}.n_pairs", test.get("n_pairs"), optional=False)
            flag(path, f"{field}.{key}.significant", test.get("significant"), optional=False)
    if spec.get("vs_previous") is not None:
        text(path, f"{field}.vs_previous.model", spec["vs_previous"].get("model"), optional=False, empty=False)


def _quality_trust(path: Path, field: str, trust) -> None:
    """leaderboard.json's verdict on a task's judge: ``reliable`` is false exactly when there are reasons."""
    mapping(path, field, trust, optional=True)
    if trust is None:
        return
    flag(path, f"{field}.reliable", trust.get("reliable"), optional=False)
    _reasons(path, f"{field}.reasons", trust.get("reasons"))
    if trust["reliable"] == bool(trust["reasons"]):
        _fail(path, f"{field}.reliable", "false exactly when reasons is non-empty", trust["reliable"])
    count(path, f"{field}.failures", trust.get("failures"))
    count(path, f"{field}.n", trust.get("n"))
    number(path, f"{field}.failures_rate", trust.get("failures_rate"))
    _sanity(path, f"{field}.sanity", trust.get("sanity"))
    _agreement(path, f"{field}.agreement", trust.get("agreement"))


def _board_task(path: Path, field: str, entry: dict) -> None:
    count(path, f"{field}.n", entry.get("n"), optional=False)
    text(path, f"{field}.primary", entry.get("primary"))
    count(path, f"{field}.judge_failures", entry.get("judge_failures"))
    _quality_trust(path, f"{field}.quality_trust", entry.get("quality_trust"))
    pairwise = entry.get("pairwise")
    mapping(path, f"{field}.pairwise", pairwise, optional=True)
    if pairwise is not None:
        text(path, f"{field}.pairwise.reference", pairwise.get("reference"))
        text(path, f"{field}.pairwise.judge", pairwise.get("judge"))
        _win_rates(path, f"{field}.pairwise", pairwise)
    metrics = entry.get("metrics")
    mapping(path, f"{field}.metrics", metrics)
    for name, spec in metrics.items():
        _metric(path, f"{field}.metrics[{name!r}]", spec)
    numeric = tuple(spec["field"] for spec in metrics.values())
    samples(path, f"{field}.samples", entry.get("samples"), numeric)
    example = entry.get("example")
    mapping(path, f"{field}.example", example, optional=True)
    if example is not None:
        text(path, f"{field}.example.prompt", example.get("prompt"), optional=False)
        text(path, f"{field}.example.response", example.get("response"), optional=False)
        if not (isinstance(example.get("doc_id"), str) or is_count(example.get("doc_id"))):
            _fail(path, f"{field}.example.doc_id", "a whole number >= 0 or a string", example.get("doc_id"))


def _row(path: Path, field: str, row) -> None:
    mapping(path, field, row)
    text(path, f"{field}.id", row.get("id"), optional=False, empty=False)
    text(path, f"{field}.model", row.get("model"), optional=False, empty=False)
    for name in ("arm", "model_path", "run_dir"):
        text(path, f"{field}.{name}", row.get(name))
    count(path, f"{field}.iteration", row.get("iteration"))
    flag(path, f"{field}.is_base", row.get("is_base"))
    stats = row.get("train_stats")
    mapping(path, f"{field}.train_stats", stats, optional=True)
    for key, value in (stats or {}).items():
        if key in TEXT_TRAIN_STATS:
            text(path, f"{field}.train_stats[{key!r}]", value, optional=False)
        else:
            number(path, f"{field}.train_stats[{key!r}]", value, optional=False)
    for task, entry in _task_entries(path, row, "tasks").items():
        _board_task(path, f"{field}.tasks[{task!r}]", entry)


def board_file(path: Path, board: dict) -> None:
    """leaderboard.json: every field a view prints or a statistic reads, with its type (see board.py's shape)."""
    text(path, "created", board.get("created"))
    text(path, "base", board.get("base"))
    tasks = board.get("tasks")
    array(path, "tasks", tasks)
    for i, task in enumerate(tasks):
        text(path, f"tasks[{i}]", task, optional=False)
    method = board.get("method", {})
    mapping(path, "method", method)
    for name, value in method.items():
        text(path, f"method[{name!r}]", value, optional=False)
    fits = board.get("length_control", {})
    mapping(path, "length_control", fits)
    for task, fit in fits.items():
        where = f"length_control[{task!r}]"
        mapping(path, where, fit)
        for name in ("slope", "common_words"):
            number(path, f"{where}.{name}", fit.get(name), optional=False)
        mapping(path, f"{where}.intercepts", fit.get("intercepts"))
        for model, value in fit["intercepts"].items():
            number(path, f"{where}.intercepts[{model!r}]", value, optional=False)
    rows = board.get("rows")
    array(path, "rows", rows)
    ids = set()
    for i, row in enumerate(rows):
        _row(path, f"rows[{i}]", row)
        if row["id"] in ids:
            _fail(path, f"rows[{i}].id", "unique (one row per model)", row["id"])
        ids.add(row["id"])
