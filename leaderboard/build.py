"""Build leaderboard.json from run directories: one row per checkpoint, every number with a 95% interval.

Columns per task: the length scores the task reports (LonGen overall and per type, LongBench-Write S_l,
anything else that is a mean of the samples' scores), mean output words, the degeneration metrics the
samples carry (effective words, repeated 10-grams, ended at cap, ends a sentence), judge quality and its
length-controlled version when judged, judge failures and how far to trust the judge (leaderboard/trust.py),
the primary score and mean words per demand range when the task declares ranges (leaderboard/demand.py), and
the pairwise judge's win rates where pairwise.json has them. Rows other than the base carry a paired test
against the base over the same prompts. Methods: see leaderboard/stats.py and README.md.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from leaderboard.board import VERSION, metric_values
from leaderboard.demand import demand_spec, holds, range_metric
from leaderboard.errors import LeaderboardError
from leaderboard.runs import RunDir, load_run_dir
from leaderboard.stats import Estimate, bootstrap_mean, fit_length_control, paired_test
from leaderboard.trust import quality_trust
from leaderboard.validate import TEXT_TRAIN_STATS, is_number

# Aggregate names that are the mean of the per-sample length score, whatever the rounding of the file.
SCORE_AGGREGATES = ("S_l", "overall", "score", "length_score")
# Degeneration per sample (tasks/scoring.py), each a metric of its own: whether higher is better (None: neither).
# ends_sentence and ended_at_cap are true/false per sample, so their means are shares.
DEGENERATION = {"effective_words": None, "repeated_10gram_share": False, "ended_at_cap": False,
                "ends_sentence": True}
METHOD = {
    "ci": "95% percentile bootstrap of the mean over samples (scipy.stats.bootstrap, 9999 resamples, seed 0)",
    "paired_test": "two-sided Wilcoxon signed-rank test vs. the base model over prompts matched by doc_id "
    "(mid-ranks for ties, zero differences split; exact by enumerating sign flips up to 16 non-zero "
    "differences, else the normal approximation); "
    "significant when p < 0.05",
    "length_controlled": "pooled OLS of judge quality on log(words+1) with one intercept per model; each model's "
    "prediction at the median log length of all judged samples, with the OLS 95% t-interval",
    "judge_trust": "judge quality is marked unreliable (and not gated by the regression check) when judge "
    "failures exceed 20% of the judged samples, when the sanity check (truncated, shuffled and swapped answers "
    "judged against the original) was not measured, or when any degradation is not scored below the original "
    "significantly above chance (one-sided sign test, p < 0.05)",
    "degeneration": "per sample, under the benchmark's own word counter (lowercased): repeated 10-grams = "
    "1 - distinct/total word 10-grams (0 below 10 words; near 1 for an answer that loops); effective words = "
    "words before the first 10-gram that repeats an earlier one; ended at cap = the endpoint's finish reason "
    "was 'length' (mean over the samples whose finish reason is known); ends a sentence = the answer ends "
    "with . ! ? or … (or their CJK forms), closing quotes and brackets allowed; lower is better for repeated "
    "10-grams and ended at cap",
}
DEMAND_METHOD = ("per demand range the task declares (its YAML's metadata.demand_ranges, in words; a range holds its "
                 "low end, the last one its high end too): the primary score and mean words over the prompts whose "
                 "demand falls in it, with the same interval and paired test")
PAIRWISE_METHOD = ("pairwise judge (pairwise.json): each answer against the reference model's to the same prompt, "
                   "in both orders; win rate = the share of prompts where the model's answer is preferred, ties "
                   "half, with its 95% bootstrap interval; length-controlled win rate = the win rate predicted at "
                   "equal lengths (AlpacaEval 2's logistic fit of the preference on the length difference)")
# The pairwise.json fields of a task that the leaderboard keeps (judges/pairwise.py writes them).
PAIRWISE_FIELDS = ("n", "failures", "win_rate", "win_rate_ci", "lc_win_rate", "lc_win_rate_ci", "position_bias_rate")


def _decoding_method(runs: list[RunDir]) -> str:
    """The Method section's decoding: per task, what each run's run.json recorded (tasks alike grouped)."""
    per_task: dict[str, dict[str, list[str]]] = {}
    for run in runs:
        recorded = run.run.get("decoding")
        for task in run.scores["tasks"]:
            record = recorded.get(task) if isinstance(recorded, dict) else None
            per_task.setdefault(task, {}).setdefault(_decoding_text(record), []).append(run.model)
    grouped: dict[str, list[str]] = {}
    mixed = []
    for task, texts in per_task.items():
        if len(texts) == 1:
            grouped.setdefault(next(iter(texts)), []).append(task)
        else:
            mixed.append(f"{task}: " + "; ".join(f"{text} ({', '.join(models)})" for text, models in texts.items()))
    return "; ".join([f"{', '.join(tasks)}: {text}" for text, tasks in grouped.items()] + mixed)


def _decoding_text(record) -> str:
    if not isinstance(record, dict):
        return "decoding not recorded (run.json written before it was)"
    if not record.get("temperature"):
        text = "greedy"
    else:
        text = f"sampled at temperature {record['temperature']}, top_p {record.get('top_p')}"
        text += f", top_k {record['top_k']}" if record.get("top_k") is not None else ""
        text += f", seed {record.get('seed')} ({record.get('seeding')})"
    if record.get("repetition_penalty") is not None:
        text += f", repetition penalty {record['repetition_penalty']}"
    if record.get("max_gen_toks") is not None:
        text += f", at most {record['max_gen_toks']} new tokens"
    source = "the task's published decoding" if record.get("source") == "task" else f"set by {record.get('source')}"
    return f"{text} ({source})"


def _reported_metrics(entry: dict) -> list[tuple[str, str, str | None]]:
    """(name, sample field, sample type or None) for each aggregate of a task entry that is a sample mean.

    An aggregate named like a sample type is the mean score of that type (LonGen's about/range/...);
    one named like a numeric sample field is that field's mean (LongWrite-Ruler's length_ratio);
    S_l, overall, or any number equal to the mean score is the mean score. Others (by_length) are skipped.
    """
    samples = entry["samples"]
    types = {s.get("type") for s in samples}
    scores = [s["score"] for s in samples if is_number(s.get("score"))]
    mean = sum(scores) / len(scores) if scores else None
    found = []
    for key, value in entry.items():
        if key in ("n", "words") or key in DEGENERATION or not is_number(value):
            continue
        if key in types:
            found.append((key, "score", key))
        elif key != "score" and any(is_number(s.get(key)) for s in samples):
            found.append((key, key, None))
        elif key in SCORE_AGGREGATES or (mean is not None and abs(value - mean) <= 1e-6 * max(1.0, abs(mean))):
            found.append((key, "score", None))
    if not any(field == "score" and kind is None for _, field, kind in found) and scores:
        found.insert(0, ("score", "score", None))
    return found


def _metric_spec(estimate: Estimate, field: str, sample_type: str | None, higher_is_better: bool | None) -> dict:
    """A metric column: the estimate, and which sample field (and type) holds its per-prompt values."""
    return estimate.to_json() | {"field": field, "type": sample_type, "higher_is_better": higher_is_better,
                                 "vs_base": None, "vs_previous": None}


def _metric(values: dict, field: str, sample_type: str | None, higher_is_better: bool | None) -> dict:
    return _metric_spec(bootstrap_mean(list(values.values())), field, sample_type, higher_is_better)


def _add_demand_ranges(result: dict, ranges: list[list[int]]) -> None:
    """The primary score and mean words over each demand range's prompts, as metrics of their own."""
    required = {s["doc_id"]: s["required_words"] for s in result["samples"]}
    for i, bounds in enumerate(ranges):
        demand = demand_spec(bounds, last=i == len(ranges) - 1)
        for name in (result["primary"], "words"):
            spec = result["metrics"].get(name)
            if spec is None:
                continue
            values = {d: v for d, v in metric_values(result, name).items() if holds(demand, required[d])}
            result["metrics"][range_metric(name, demand)] = _metric(
                values, spec["field"], spec["type"], spec["higher_is_better"]) | {"demand": demand}


def _pairwise_entry(report: dict, task: str) -> dict | None:
    """The task's win rates against the reference model from pairwise.json, or None when it was not compared."""
    entry = report["tasks"].get(task)
    if entry is None:
        return None
    return {"reference": report.get("reference"), "judge": (report.get("judge") or {}).get("model"),
            **{key: entry.get(key) for key in PAIRWISE_FIELDS}}


def _task_entry(entry: dict, judged: dict | None, ranges: list[list[int]]) -> dict:
    reported = _reported_metrics(entry)
    extra_fields = [field for _, field, _ in reported if field not in ("score", "words")] + list(DEGENERATION)
    quality = {}
    if judged is not None:
        quality = {s["doc_id"]: s.get("quality") for s in judged["samples"] if is_number(s.get("quality"))}
    samples = [
        {"doc_id": s["doc_id"], "type": s.get("type"), "required_words": s.get("required_words"),
         "words": s.get("words"), "score": s.get("score"), "quality": quality.get(s["doc_id"]),
         **{field: s[field] for field in extra_fields if field in s}}
        for s in entry["samples"]
    ]
    result = {"n": len(samples), "samples": samples, "metrics": {}, "primary": None, "judge_failures": None,
              "quality_trust": None}
    for name, field, sample_type in reported:
        values = {s["doc_id"]: float(s[field]) for s in entry["samples"]
                  if is_number(s.get(field)) and (sample_type is None or s.get("type") == sample_type)}
        result["metrics"][name] = _metric(values, field, sample_type, True if field == "score" else None)
        if result["primary"] is None and field == "score" and sample_type is None:
            result["primary"] = name
    if entry.get("primary_metric") in result["metrics"]:  # the task YAML's declaration, written by the scorer
        result["primary"] = entry["primary_metric"]
    words = {s["doc_id"]: float(s["words"]) for s in samples if is_number(s["words"])}
    if words:
        result["metrics"]["words"] = _metric(words, "words", None, None)
    for name, higher_is_better in DEGENERATION.items():
        values = {s["doc_id"]: float(s[name]) for s in samples
                  if is_number(s.get(name)) or isinstance(s.get(name), bool)}
        if values:
            result["metrics"][name] = _metric(values, name, None, higher_is_better)
    if judged is not None:
        result["metrics"]["quality"] = _metric({d: float(q) for d, q in quality.items()}, "quality", None, True)
        failures = judged.get("failures")
        result["judge_failures"] = int(failures) if is_number(failures) else sum(
            1 for s in judged["samples"] if s.get("quality") is None)
        result["quality_trust"] = quality_trust(judged, result["judge_failures"])
    _add_demand_ranges(result, ranges)
    example = next((s for s in entry["samples"] if isinstance(s.get("response"), str)), None)
    if example is not None:
        result["example"] = {"doc_id": example["doc_id"], "prompt": str(example.get("prompt", "")),
                             "response": example["response"]}
    return result


def _train_numbers(stats: dict | None) -> dict | None:
    """The numeric facts of train_stats (samples, answer_words_mean, train_tokens, ...) and the short text ones
    (matched_budget); config and paths dropped."""
    if not isinstance(stats, dict):
        return None
    return {key: value for key, value in stats.items()
            if is_number(value) or (key in TEXT_TRAIN_STATS and isinstance(value, str))}


def _row(run: RunDir, demand_ranges: dict[str, list[list[int]]]) -> dict:
    judged = (run.judgements or {}).get("tasks", {})
    tasks = {task: _task_entry(entry, judged.get(task), demand_ranges.get(task, []))
             for task, entry in run.scores["tasks"].items()}
    if run.pairwise is not None:
        for task, entry in tasks.items():
            pairwise = _pairwise_entry(run.pairwise, task)
            if pairwise is not None:
                entry["pairwise"] = pairwise
    return {
        "id": run.model, "model": run.model, "model_path": run.run.get("model_path"),
        "arm": run.run.get("arm"), "iteration": run.run.get("iteration"),
        "train_stats": _train_numbers(run.run.get("train_stats")), "run_dir": str(run.path), "is_base": False,
        "tasks": tasks,
    }


def _add_length_control(rows: list[dict], task: str) -> dict | None:
    """Fit quality on log length across the rows judged on ``task``; add the quality_lc metric to each."""
    judged = [r for r in rows if "quality" in r["tasks"].get(task, {}).get("metrics", {})]
    points = {r["id"]: [(float(s["words"]), float(s["quality"])) for s in r["tasks"][task]["samples"]
                        if is_number(s["quality"]) and is_number(s["words"])] for r in judged}
    fit = fit_length_control(points)
    if fit is None:
        return None
    for row in judged:
        entry = row["tasks"][task]
        for sample in entry["samples"]:
            if is_number(sample["quality"]) and is_number(sample["words"]):
                sample["quality_lc"] = fit.adjusted(sample["quality"], sample["words"])
        if row["id"] in fit.estimates:
            entry["metrics"]["quality_lc"] = _metric_spec(fit.estimates[row["id"]], "quality_lc", None, True)
    return fit.to_json()


def _pick_base(rows: list[dict], base: str | None) -> dict | None:
    if base is not None:
        match = [r for r in rows if r["id"] == base]
        if not match:
            raise LeaderboardError(f"base model {base!r} is not among the runs ({', '.join(r['id'] for r in rows)})")
        return match[0]
    arms = [r for r in rows if r["arm"] == "base"]
    return arms[0] if len(arms) == 1 else None


def _compare(row: dict, reference_row: dict, key: str, extra: dict | None = None) -> None:
    """Set each metric's `key` to its paired test against `reference_row` over the prompts both answered."""
    for task, entry in row["tasks"].items():
        reference = reference_row["tasks"].get(task)
        for name, spec in entry["metrics"].items():
            if reference is None or name not in reference["metrics"]:
                continue
            test = paired_test(metric_values(reference, name), metric_values(entry, name))
            spec[key] = test.to_json() | (extra or {}) if test else None


def _compare_to_base(rows: list[dict], base_row: dict) -> None:
    for row in rows:
        if row is not base_row:
            _compare(row, base_row, "vs_base")


def _compare_to_previous_iteration(rows: list[dict]) -> None:
    """Each iteration after the first against the iteration before it of the same arm, over the same prompts."""
    by_step = {(row["arm"], row["iteration"]): row for row in rows if isinstance(row.get("iteration"), int)}
    for (arm, step), row in by_step.items():
        previous = by_step.get((arm, step - 1))
        if previous is not None:
            _compare(row, previous, "vs_previous", {"model": previous["id"]})


def _training_budget_method(runs) -> str | None:
    """Whether the trained arms were matched in training examples (train_stats.matched_budget), so a reader
    of the comparison knows if it compares methods or also data volumes; None where no row was trained."""
    trained = [(run.run["model"], run.run.get("train_stats") or {}) for run in runs if run.run.get("train_stats")]
    if not trained:
        return None
    matched = [(model, stats["matched_budget"]) for model, stats in trained
               if stats.get("matched_budget") not in (None, "off")]
    if not matched:
        return ("arms were not matched: each trained on all the examples its method kept (the training table "
                "gives how many), so a comparison between arms also compares their data volumes")
    return "arms trained on matched budgets: " + "; ".join(f"{model}: {budget}" for model, budget in matched)


def build_leaderboard(run_dirs: list[Path], base: str | None,
                      demand_ranges: dict[str, list[list[int]]] | None = None) -> dict:
    """The leaderboard of these run directories; ``base`` names the reference model (default: the arm 'base');
    ``demand_ranges`` ({task: [[low, high], ...]}, the task YAMLs' declarations) adds per-range metrics."""
    if not run_dirs:
        raise LeaderboardError("no run directories given")
    runs = [load_run_dir(Path(p)) for p in run_dirs]
    rows = [_row(run, demand_ranges or {}) for run in runs]
    seen = set()
    for row in rows:
        if row["id"] in seen:
            raise LeaderboardError(f"two run directories have the same model name {row['id']!r}")
        seen.add(row["id"])
    tasks = list(dict.fromkeys(task for row in rows for task in row["tasks"]))
    length_control = {}
    for task in tasks:
        fit = _add_length_control(rows, task)
        if fit is not None:
            length_control[task] = fit
    base_row = _pick_base(rows, base)
    if base_row is not None:
        base_row["is_base"] = True
        _compare_to_base(rows, base_row)
    _compare_to_previous_iteration(rows)
    method = {**METHOD, "decoding": _decoding_method(runs)}
    entries = [entry for row in rows for entry in row["tasks"].values()]
    if any(spec.get("demand") for entry in entries for spec in entry["metrics"].values()):
        method["demand_ranges"] = DEMAND_METHOD
    if any("pairwise" in entry for entry in entries):
        method["pairwise"] = PAIRWISE_METHOD
    budgets = _training_budget_method(runs)
    if budgets:
        method["training budgets"] = budgets
    return {
        "version": VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "base": base_row["id"] if base_row else None, "tasks": tasks,
        "method": method,
        "length_control": length_control, "rows": rows,
    }
