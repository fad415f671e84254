"""Length scores of the three benchmarks, as pure functions over (benchmark row, response).

One implementation serves lm-eval's `process_results` (tasks/*/utils.py) and `selflengthen score`,
so the numbers lm-eval prints and the numbers in scores.json cannot drift apart.
The formulas are the published ones (LonGen: Self-Lengthen, Quan et al. 2024; S_l: LongWriter,
Bai et al. 2024); see the benchmark READMEs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from infra.journal import iter_jsonl
from tasks.longen_rules import LONGEN_CJK_CHARS, LONGEN_TYPES, count_words_longen, longen_interval
from tasks.metadata import primary_metric

# Which scorer a task name uses; the *_mini and *_small variants are scored exactly like their full task.
TASK_FAMILIES = {
    "longen": "longen",
    "longen_mini": "longen",
    "longen_en_small": "longen",
    "longbench_write": "longbench_write",
    "longbench_write_mini": "longbench_write",
    "longbench_write_en": "longbench_write",
    "longbench_write_en_mini": "longbench_write",
    "longbench_write_en_small": "longbench_write",
    "longwrite_ruler": "longwrite_ruler",
    "longwrite_ruler_mini": "longwrite_ruler",
}

# LongBench-Write counts CJK ideographs one each, plus ASCII-letter words.
_LBW_CJK = re.compile(r"[\u4e00-\u9fff]")
_LBW_WORD = re.compile(r"\b[a-zA-Z]+\b")
_NUMBER = re.compile(r"\d[\d,]*")
# The largest word demand taken as meant: the benchmarks ask for at most tens of thousands, and a
# demand like 1e308 would score every answer 0 (or overflow) instead of failing visibly.
MAX_DEMAND = 1_000_000

# Degeneration: a response's word n-grams (n = REPEAT_N) under its benchmark's own word counter.
REPEAT_N = 10
# The finish reason of an OpenAI-compatible endpoint for an answer cut by the token cap.
FINISH_AT_CAP = "length"
# A sentence end, possibly followed by closing quotes, brackets or Markdown emphasis, at the very end.
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f\u2026][\s\"'\u201d\u2019\u00bb)\]}*_\u300d\u300f\uff09\u3011]*\Z")
_LONGEN_TOKEN = re.compile(rf"[{LONGEN_CJK_CHARS}]|[^\s{LONGEN_CJK_CHARS}]+")
_LBW_TOKEN = re.compile(rf"{_LBW_CJK.pattern}|{_LBW_WORD.pattern}")


class ScoringInputError(ValueError):
    """Predictions that cannot be scored: unknown task, missing file, bad line, missing field."""


def family_of(task: str) -> str:
    """The scorer family ('longen', 'longbench_write', 'longwrite_ruler') of a task name."""
    try:
        return TASK_FAMILIES[task]
    except KeyError:
        raise ScoringInputError(f"unknown task {task!r}; known tasks: {', '.join(TASK_FAMILIES)}") from None


def count_words_longbench_write(text: str) -> int:
    """LongBench-Write's word count: CJK ideographs plus words matching `\\b[a-zA-Z]+\\b`."""
    return len(_LBW_CJK.findall(text)) + len(_LBW_WORD.findall(text))


def word_tokens(family: str, text: str) -> list[str]:
    """The response's words in order, lowercased, under the benchmark's own counter (as many as `words`)."""
    pattern = _LONGEN_TOKEN if family == "longen" else _LBW_TOKEN
    return [token.lower() for token in pattern.findall(text)]


def repeated_ngram_share(tokens: list[str], n: int = REPEAT_N) -> float:
    """1 - distinct/total word n-grams: 0 without repeats, near 1 for a loop; 0 below n words."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def effective_words(tokens: list[str], n: int = REPEAT_N) -> int:
    """Words before the first n-gram that repeats an earlier one (all words when none does)."""
    seen = set()
    for i in range(len(tokens) - n + 1):
        gram = tuple(tokens[i:i + n])
        if gram in seen:
            return i
        seen.add(gram)
    return len(tokens)


def ends_sentence(text: str) -> bool:
    """Whether the text ends with . ! ? … (or their CJK forms), closing quotes and brackets allowed after."""
    return bool(_SENTENCE_END.search(text.rstrip()))


def degeneration(family: str, response: str, finish_reason: str | None) -> dict:
    """The sample fields that see a looping or cut-off answer (docs/run_directory.md).

    `ended_at_cap` is None when the finish reason is unknown (an external file without one, lm-eval's
    in-process backends), never a guess.
    """
    tokens = word_tokens(family, response)
    return {
        "repeated_10gram_share": repeated_ngram_share(tokens), "effective_words": effective_words(tokens),
        "ends_sentence": ends_sentence(response), "finish_reason": finish_reason,
        "ended_at_cap": None if finish_reason is None else finish_reason == FINISH_AT_CAP,
    }


def longen_demand(constraint_type: str, constraint: str) -> list[int]:
    """The numbers of a LonGen constraint ('around 2000 words' -> [2000], '2000字至3000字' -> [2000, 3000])."""
    if constraint_type not in LONGEN_TYPES:
        raise ScoringInputError(f"unknown LonGen constraint type {constraint_type!r}; expected one of {LONGEN_TYPES}")
    if not isinstance(constraint, str):
        raise ScoringInputError(f"'constraint' must be a string, got {type(constraint).__name__}")
    numbers = [int(n.replace(",", "")) for n in _NUMBER.findall(constraint)]
    expected = 2 if constraint_type == "range" else 1
    if len(numbers) != expected:
        raise ScoringInputError(
            f"LonGen constraint {constraint!r} of type {constraint_type!r} should hold {expected} number(s), found {numbers}"
        )
    if not all(1 <= n <= MAX_DEMAND for n in numbers):
        raise ScoringInputError(f"'constraint' {constraint!r} demands {numbers} words; each must be 1 to {MAX_DEMAND:,}")
    if numbers != sorted(numbers):
        raise ScoringInputError(f"'constraint' {constraint!r} is a range from {numbers[0]} down to {numbers[1]}")
    return numbers


def longen_bounds(constraint_type: str, constraint: str) -> tuple[float, float]:
    """The accepted word interval of a LonGen constraint written out ('around 2000 words')."""
    return longen_interval(constraint_type, longen_demand(constraint_type, constraint))


def longen_score(words: int, bounds: tuple[float, float]) -> float:
    """1 inside [a, b]; below a: max(2n/a - 1, 0); above b: max(3 - 2n/b, 0)."""
    a, b = bounds
    if words < a:
        return max(2 * words / a - 1, 0.0)
    if words > b:
        return max(3 - 2 * words / b, 0.0)
    return 1.0


def length_score(required: int, words: int) -> float:
    """LongBench-Write's S_l of one sample (0-100); an empty output scores 0."""
    if words <= 0:
        return 0.0
    if words > required:
        return 100 * max(0.0, 1 - (words / required - 1) / 3)
    return 100 * max(0.0, 1 - (required / words - 1) / 2)


def prompt_language(text: str) -> str:
    """'zh' when CJK ideographs outnumber ASCII words, else 'en' (a label for rows without a language field)."""
    return "zh" if len(_LBW_CJK.findall(text)) > len(_LBW_WORD.findall(text)) else "en"


def _mean(values: list[float]) -> float | None:
    """The mean as lm-eval computes it (sum / len), None for an empty group."""
    return sum(values) / len(values) if values else None


def _field(row: dict, key: str, where: str) -> Any:
    if key not in row or row[key] is None:
        raise ScoringInputError(f"{where} has no {key!r} field")
    return row[key]


def _text_field(row: dict, key: str, where: str) -> str:
    """A field the sample keeps as text (the prompt): a list or a number there is a malformed row."""
    value = _field(row, key, where)
    if not isinstance(value, str):
        raise ScoringInputError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def _length_demand(row: dict, where: str) -> int:
    """The `length` field as a whole number of words in [1, MAX_DEMAND] (100, 100.0 and "100" are 100)."""
    value = _field(row, "length", where)
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and math.isfinite(value) and value.is_integer()) or (
        isinstance(value, str) and value.strip().isdecimal()
    ):
        number = int(value)
    if number is None or not 1 <= number <= MAX_DEMAND:
        raise ScoringInputError(f"{where}: 'length' must be a whole number of words from 1 to {MAX_DEMAND:,}, got {value!r}")
    return number


def score_sample(task: str, row: dict, where: str = "row 1") -> dict:
    """One scored sample record (the `samples` entries of scores.json) from a row with a `response`.

    `where` names the row in errors: "row 3", or "preds.jsonl line 4".
    """
    family = family_of(task)
    response = _field(row, "response", where)
    if not isinstance(response, str):
        raise ScoringInputError(f"{where}: 'response' must be a string, got {type(response).__name__}")
    doc_id = row.get("doc_id")
    finish_reason = row.get("finish_reason")
    if finish_reason is not None and not isinstance(finish_reason, str):
        raise ScoringInputError(f"{where}: 'finish_reason' must be a string or null, got {type(finish_reason).__name__}")
    loops = degeneration(family, response, finish_reason)
    if family == "longen":
        constraint_type = _field(row, "type", where)
        constraint = _field(row, "constraint", where)
        try:
            bounds = longen_bounds(constraint_type, constraint)
        except ScoringInputError as error:
            raise ScoringInputError(f"{where}: {error}") from None
        demand = longen_demand(constraint_type, constraint)
        words = count_words_longen(response)
        prompt = _text_field(row, "query", where)
        required = sum(demand) / len(demand)  # a range's midpoint
        required = int(required) if required.is_integer() else required
        return {
            "doc_id": doc_id, "prompt": prompt, "response": response, "words": words,
            "required_words": required, "bounds": list(bounds), "type": constraint_type,
            "language": row.get("language") or prompt_language(prompt), "score": longen_score(words, bounds),
            **loops,
        }
    prompt = _text_field(row, "prompt", where)
    required = _length_demand(row, where)
    words = count_words_longbench_write(response)
    sample = {
        "doc_id": doc_id, "prompt": prompt, "response": response, "words": words,
        "required_words": required, "score": length_score(required, words),
        "type": row.get("type"), "language": row.get("language") or prompt_language(prompt), **loops,
    }
    if family == "longwrite_ruler":
        sample["length_ratio"] = words / required
    return sample


def lm_eval_metrics(task: str, doc: dict, response: str) -> dict[str, float]:
    """Per-document metric values for lm-eval's process_results (aggregated there by `mean`).

    LonGen reports each sample under `overall` and under its own type key, so lm-eval's mean of
    `about` runs over the about-samples only, exactly like `score_predictions`.
    """
    sample = score_sample(task, {**doc, "response": response})
    family = family_of(task)
    if family == "longen":
        return {"overall": sample["score"], sample["type"]: sample["score"]}
    if family == "longbench_write":
        return {"S_l": sample["score"]}
    return {"words": sample["words"], "length_ratio": sample["length_ratio"], "S_l": sample["score"]}


def score_predictions(task: str, rows: list[dict], locations: list[str] | None = None) -> dict:
    """Score benchmark rows that carry a `response`: {"task", "n", "primary_metric", <aggregates>, "samples"}
    (docs/run_directory.md); `primary_metric` is the task YAML's declaration (tasks/metadata.py).

    longen: overall, about, range, above, below (0-1; a type with no samples is None).
    longbench_write*: S_l (0-100). longwrite_ruler*: words, length_ratio, S_l and `by_length`,
    the same three per demanded length. Every task: the degeneration means (`degeneration_aggregates`).
    A row may carry the endpoint's `finish_reason` ('length': cut by the token cap). `locations` name
    the rows in errors (default "row N"); a row without `doc_id` gets its index, and two rows with one
    doc_id are an error.
    """
    family = family_of(task)
    locations = locations or [f"row {i + 1}" for i in range(len(rows))]
    samples = [score_sample(task, {"doc_id": i, **row}, where) for i, (row, where) in enumerate(zip(rows, locations))]
    _require_unique_doc_ids(samples, locations)
    result: dict[str, Any] = {"task": task, "n": len(samples), "primary_metric": primary_metric(task, family)}
    scores = [s["score"] for s in samples]
    if family == "longen":
        result["overall"] = _mean(scores)
        for constraint_type in LONGEN_TYPES:
            result[constraint_type] = _mean([s["score"] for s in samples if s["type"] == constraint_type])
    elif family == "longbench_write":
        result["S_l"] = _mean(scores)
    else:
        result.update(_ruler_aggregates(samples))
        result["by_length"] = {
            str(length): {"n": len(group), **_ruler_aggregates(group)}
            for length in sorted({s["required_words"] for s in samples})
            for group in [[s for s in samples if s["required_words"] == length]]
        }
    result.update(degeneration_aggregates(samples))
    result["samples"] = samples
    return result


def degeneration_aggregates(samples: list[dict]) -> dict[str, float | None]:
    """Means of the degeneration fields; `ended_at_cap` is the share among samples whose finish reason is known."""
    known = [s["ended_at_cap"] for s in samples if s["ended_at_cap"] is not None]
    return {
        "repeated_10gram_share": _mean([s["repeated_10gram_share"] for s in samples]),
        "effective_words": _mean([s["effective_words"] for s in samples]),
        "ends_sentence": _mean([float(s["ends_sentence"]) for s in samples]),
        "ended_at_cap": _mean([float(cut) for cut in known]),
    }


def _require_unique_doc_ids(samples: list[dict], locations: list[str]) -> None:
    first_seen: dict[Any, str] = {}
    for sample, where in zip(samples, locations):
        doc_id = sample["doc_id"]
        if not isinstance(doc_id, (int, str)) or isinstance(doc_id, bool):
            raise ScoringInputError(f"{where}: 'doc_id' must be an integer or a string, got {doc_id!r}")
        if doc_id in first_seen:
            raise ScoringInputError(f"{where}: duplicate 'doc_id' {doc_id!r} (first at {first_seen[doc_id]})")
        first_seen[doc_id] = where


def _ruler_aggregates(samples: list[dict]) -> dict[str, float | None]:
    return {
        "words": _mean([s["words"] for s in samples]),
        "length_ratio": _mean([s["length_ratio"] for s in samples]),
        "S_l": _mean([s["score"] for s in samples]),
    }


def score_file(task: str, path: str | Path) -> dict:
    """`score_predictions` over a predictions file, with errors naming the file and line.

    The file holds benchmark rows with a `response`, or is lm-eval's samples_*.jsonl: a sample record
    ({"doc_id", "doc", "filtered_resps", ...}) becomes its `doc` plus `doc_id`, `finish_reason` (where the
    harness recorded one) and `response` = the first filtered response. A file without rows is an error.
    """
    path = Path(path)
    family = family_of(task)
    try:
        primary_metric(task, family)  # before the file is read: a task YAML at fault is named, not the file
    except ValueError as exc:
        raise ScoringInputError(str(exc)) from None
    numbered = _read_predictions(path)
    return score_predictions(task, [row for _, row in numbered], [f"{path} line {number}" for number, _ in numbered])


def _read_predictions(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise ScoringInputError(f"predictions file {path} does not exist")
    rows = []
    for number, record in iter_jsonl(path, ScoringInputError):
        where = f"{path} line {number}"
        if "doc" in record and "filtered_resps" in record:
            record = _row_from_lm_eval_sample(record, where)
        if not isinstance(record.get("response"), str):
            raise ScoringInputError(f"{where}: no 'response' string in the row")
        rows.append((number, record))
    if not rows:
        raise ScoringInputError(f"predictions file {path} holds no rows")
    return rows


def _row_from_lm_eval_sample(record: dict, where: str) -> dict:
    responses, doc = record["filtered_resps"], record["doc"]
    if not isinstance(responses, list):
        raise ScoringInputError(f"{where}: 'filtered_resps' must be a list of responses, got {type(responses).__name__}")
    if not isinstance(doc, dict):
        raise ScoringInputError(f"{where}: 'doc' must be an object, got {type(doc).__name__}")
    kept = {key: record[key] for key in ("doc_id", "finish_reason") if key in record}
    return {**doc, **kept, "response": responses[0] if responses else None}


def score_lm_eval_samples(samples: dict[str, list[dict]], model_name: str) -> dict:
    """scores.json from lm-eval's logged samples per task: each answer scored with its benchmark's formula.

    A sample's `finish_reason` (added by harness/scoring/lm_eval_driver.py from the endpoint's replies) is kept.
    """
    scored = {}
    for task, task_samples in sorted(samples.items()):
        rows = []
        for sample in sorted(task_samples, key=lambda s: s["doc_id"]):
            response = sample["filtered_resps"][0] if sample.get("filtered_resps") else sample["resps"][0][0]
            rows.append({**sample["doc"], "doc_id": sample["doc_id"], "response": response,
                         "finish_reason": sample.get("finish_reason")})
        scored[task] = score_predictions(task, rows)
    return {"model": model_name, "tasks": scored}
