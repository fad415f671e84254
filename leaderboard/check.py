"""The regression check: is a candidate significantly worse than a baseline on a task's primary metric?

Both sides are leaderboard.json files or run directories. Rows are matched by model name (or, when each
side has exactly one row, to each other); per task and metric the same prompts (doc_ids) are compared
with the two-sided paired Wilcoxon test as scipy.stats.wilcoxon(zero_method="pratt") computes it by default
(GATE_TEST: zero differences ranked but given to neither sign; exact up to 13 prompts, else the normal
approximation). That rule reproduces issue #35's power table, and where many prompts tie at zero, as on
LonGen's pass/fail score, it flags a real fall more often than the leaderboard's zero split. The gate: each
task's primary metric (the task YAML's `metadata.primary_metric`, carried in leaderboard.json as the task's
`primary`), or the metrics named with --metric instead. Every other metric with a direction is compared and reported, never gated,
so testing LonGen's four constraint types beside its overall score cannot multiply false alarms.
A metric's direction is leaderboard.json's `higher_is_better` (written by leaderboard/build.py: true for the length
scores and judge quality, false for repeated 10-grams and ended at cap, null for words): "worse" means lower where
higher is better and higher where lower is better; a metric without a direction cannot be gated.
The gated p-values are Holm-corrected across all gated comparisons (all tasks, all matched rows), which
keeps the chance that two identical models fail the check at or below 5% (measured:
tests/test_check_false_alarms.py). A gated comparison is a regression when the candidate is worse, the
Holm-adjusted p < alpha (0.05 unless --alpha), and the worsening of the mean over the shared prompts exceeds
``max_drop`` times the baseline's mean (a relative tolerance, so one setting fits 0-1 and 0-100 scores). A judge quality metric
whose judge is unreliable on either side (leaderboard/trust.py) is compared and shown but not gated.
A candidate with no answer to some of the baseline's prompts of a gated task is unusable input unless
--allow-subset says to compare the shared ones: a crashed or shortened run must not pass on what is left.
Exit codes: 0 no regression, 1 a regression, 2 unusable input or any other error (1 means a regression only).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from leaderboard.board import load_leaderboard, metric_values
from leaderboard.build import build_leaderboard
from leaderboard.errors import LeaderboardError, OneLineParser, path_argument, run_command
from leaderboard.format import label, number
from leaderboard.stats import ALPHA, paired_test
from leaderboard.trust import unreliable_reasons
from leaderboard.validate import is_number

DEFAULT_MAX_DROP = 0.02
GATE_TEST = {"zero_method": "pratt", "method": "scipy_auto"}  # scipy.stats.wilcoxon(zero_method="pratt")'s p


@dataclass(frozen=True)
class Comparison:
    """One task and metric of one model pair, over the prompts both sides scored."""

    task: str
    metric: str
    baseline_model: str
    candidate_model: str
    n_pairs: int
    baseline: float
    candidate: float
    p: float
    allowed_drop: float
    selected: bool = False  # chosen for the gate: the task's primary metric, or a metric named with --metric
    unreliable: tuple[str, ...] = ()  # why the judge behind this metric is not trusted; such a metric is not gated
    p_holm: float | None = None  # Holm-adjusted across every gated comparison of the check; None when not gated
    higher_is_better: bool = True  # the metric's direction (leaderboard.json); a drop is a move the other way
    alpha: float = ALPHA  # the significance level of the check

    @property
    def gated(self) -> bool:
        return self.selected and not self.unreliable

    @property
    def drop(self) -> float:
        """How much worse the candidate is in the metric's direction (negative: better)."""
        change = self.candidate - self.baseline
        return -change if self.higher_is_better else change

    @property
    def significant_drop(self) -> bool:
        """Worse by more than the tolerance at p < alpha: the Holm-adjusted p when gated, else the comparison's own."""
        return (self.p if self.p_holm is None else self.p_holm) < self.alpha and self.drop > self.allowed_drop

    @property
    def regression(self) -> bool:
        return self.gated and self.significant_drop


@dataclass(frozen=True)
class CheckResult:
    """All comparisons, or the one-line reason the inputs could not be compared."""

    comparisons: list[Comparison] = field(default_factory=list)
    error: str | None = None
    metrics: tuple[str, ...] = ()  # the metrics named with --metric; empty: each task's primary metric is gated
    alpha: float = ALPHA

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.regression]

    @property
    def gated(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.gated]

    @property
    def ungated(self) -> list[Comparison]:
        """Comparisons chosen for the gate but left out of it: their judge is unreliable."""
        return [c for c in self.comparisons if c.selected and c.unreliable]

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return 2
        return 1 if self.regressions else 0


def _load(path: Path, demand_ranges: dict[str, list[list[int]]] | None) -> dict:
    path = Path(path)
    if path.is_dir():
        return build_leaderboard([path], None, demand_ranges)
    return load_leaderboard(path)


def _pairs(baseline: dict, candidate: dict) -> list[tuple[dict, dict]]:
    if len(baseline["rows"]) == 1 and len(candidate["rows"]) == 1:
        return [(baseline["rows"][0], candidate["rows"][0])]
    by_id = {row["id"]: row for row in candidate["rows"]}
    return [(row, by_id[row["id"]]) for row in baseline["rows"] if row["id"] in by_id]


def holm_adjusted(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order: the i-th smallest (from 0) times (m - i),
    made non-decreasing and capped at 1. Rejecting where adjusted p < alpha is Holm's procedure at alpha."""
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(range(len(p_values)), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def gate_metrics(entry: dict, metrics: list[str] | tuple[str, ...] | None) -> list[str]:
    """The metrics a task's comparison gates: those named with --metric, else the task's primary metric (if any)."""
    return list(metrics) if metrics else [entry["primary"]] if entry.get("primary") else []


def _undirected(pairs: list[tuple[dict, dict]], metrics: list[str] | None) -> list[str]:
    """Gated metrics whose leaderboard.json says neither higher nor lower is better: no change of theirs is worse."""
    return sorted({m for row, _ in pairs for entry in row["tasks"].values() for m in gate_metrics(entry, metrics)
                   if m in entry["metrics"] and entry["metrics"][m].get("higher_is_better") is None})


def _compare_rows(old: dict, new: dict, metrics: list[str] | None, max_drop: float, alpha: float) -> list[Comparison]:
    found = []
    for task, old_entry in old["tasks"].items():
        new_entry = new["tasks"].get(task)
        if new_entry is None:
            continue
        gate = gate_metrics(old_entry, metrics)
        names = [m for m, spec in old_entry["metrics"].items()
                 if m in gate or (spec.get("higher_is_better") is not None and spec.get("demand") is None)]
        for metric in names:
            if metric not in new_entry["metrics"]:
                continue
            before, after = metric_values(old_entry, metric), metric_values(new_entry, metric)
            test = paired_test(before, after, **GATE_TEST)
            if test is None:
                continue
            shared = set(before) & set(after)
            base_mean = sum(before[d] for d in shared) / len(shared)
            reasons = [f"{side} {row['id']}: {reason}" for side, row, entry in
                       (("baseline", old, old_entry), ("candidate", new, new_entry))
                       for reason in unreliable_reasons(entry, metric)]
            found.append(Comparison(task, metric, old["id"], new["id"], test.n_pairs, base_mean,
                                    base_mean + test.diff, test.p, max_drop * abs(base_mean), metric in gate,
                                    tuple(reasons), higher_is_better=old_entry["metrics"][metric]["higher_is_better"],
                                    alpha=alpha))
    return found


def settings_error(max_drop: float, alpha: float) -> str | None:
    """Why the check's settings are unusable, or None: a tolerance must be finite and >= 0, alpha inside (0, 1)."""
    if not (is_number(max_drop) and max_drop >= 0):
        return f"--max-drop must be a finite number >= 0, got {max_drop!r}"
    if not (is_number(alpha) and 0 < alpha < 1):
        return f"--alpha must be a number between 0 and 1, got {alpha!r}"
    return None


def compare(baseline: Path, candidate: Path, metrics: list[str] | None = None,
            max_drop: float = DEFAULT_MAX_DROP, alpha: float = ALPHA,
            demand_ranges: dict[str, list[list[int]]] | None = None, allow_subset: bool = False) -> CheckResult:
    """Compare two leaderboards (or run directories) per task and metric over shared prompts; ``demand_ranges``
    ({task: [[low, high], ...]}) gives a run directory's per-range metrics, as build_leaderboard takes them."""
    error = settings_error(max_drop, alpha)
    if error is not None:
        return CheckResult(error=error)
    try:
        old, new = _load(baseline, demand_ranges), _load(candidate, demand_ranges)
    except LeaderboardError as error:
        return CheckResult(error=str(error))
    return compare_boards(old, new, metrics, max_drop, f"{baseline} and {candidate}", alpha, allow_subset)


def compare_boards(old: dict, new: dict, metrics: list[str] | None = None, max_drop: float = DEFAULT_MAX_DROP,
                   where: str = "the two leaderboards", alpha: float = ALPHA, allow_subset: bool = False) -> CheckResult:
    """The check of two loaded leaderboards: every comparison, the gated ones with Holm-adjusted p-values.

    ``where`` names the inputs in errors (no model in both, nothing to gate, a gated metric without a direction,
    a candidate without answers to some of the baseline's prompts of a gated task, unless ``allow_subset``).
    """
    pairs = _pairs(old, new)
    if not pairs:
        return CheckResult(error=f"no model appears in both {where}")
    undirected = _undirected(pairs, metrics)
    if undirected:
        return CheckResult(error=f"metric(s) {', '.join(undirected)} in {where} have no direction (neither higher nor "
                                 "lower is better), so no change of theirs is a regression; gate another metric")
    comparisons = [c for old_row, new_row in pairs for c in _compare_rows(old_row, new_row, metrics, max_drop, alpha)]
    if not any(c.selected for c in comparisons):
        wanted = f" for metric(s) {', '.join(metrics)}" if metrics else " for its primary metric" if comparisons else ""
        return CheckResult(error=f"no common task with shared prompts{wanted} in {where}")
    missing = None if allow_subset else _missing_prompts(pairs, comparisons)
    if missing is not None:
        return CheckResult(error=missing)
    gated = [i for i, c in enumerate(comparisons) if c.gated]
    for i, adjusted in zip(gated, holm_adjusted([comparisons[i].p for i in gated])):
        comparisons[i] = replace(comparisons[i], p_holm=adjusted)
    return CheckResult(comparisons, metrics=tuple(dict.fromkeys(metrics or ())), alpha=alpha)


def _missing_prompts(pairs: list[tuple[dict, dict]], comparisons: list[Comparison]) -> str | None:
    """Why the check refuses: a gated task's baseline prompts the candidate has no answer to (a crashed or
    shortened run would otherwise be compared on what is left, and the gate would lose the power it was sized
    for), or None."""
    gated = {(c.candidate_model, c.task) for c in comparisons if c.gated}
    for old_row, new_row in pairs:
        for task, entry in old_row["tasks"].items():
            if (new_row["id"], task) not in gated:
                continue
            answered = {s["doc_id"] for s in new_row["tasks"][task]["samples"]}
            lost = [s["doc_id"] for s in entry["samples"] if s["doc_id"] not in answered]
            if lost:
                shown = ", ".join(map(str, lost[:5])) + (", ..." if len(lost) > 5 else "")
                return (f"the candidate {new_row['id']} has no answer to {len(lost)} of the baseline's "
                        f"{len(entry['samples'])} prompts of {task} (doc_ids {shown}): run it on the baseline's "
                        "prompts, or pass --allow-subset to compare the shared ones")
    return None


def check_table(result: CheckResult) -> Table:
    """A rich table of every comparison: gated ones 'ok' or 'REGRESSION' (red) with their Holm-adjusted p,
    the others 'reported', and a chosen metric of an unreliable judge 'not gated'."""
    table = Table(title="regression check (candidate vs. baseline, paired over shared prompts)", title_justify="left")
    for name in ("task", "metric", "better", "model", "n", "baseline", "candidate", "change", "p", "p (Holm)",
                 "verdict"):
        table.add_column(name, justify="left" if name in ("task", "metric", "better", "model", "verdict") else "right",
                         no_wrap=name == "verdict", min_width=10 if name == "verdict" else None)
    for c in result.comparisons:
        model = c.candidate_model
        if c.candidate_model != c.baseline_model:
            model = f"{c.baseline_model} → {c.candidate_model}"
        verdict = Text("REGRESSION", style="red") if c.regression else Text("ok", style="green")
        if c.selected and c.unreliable:
            verdict = Text("not gated", style="yellow")
        elif not c.selected:
            verdict = Text("reported", style="dim")
        table.add_row(Text(c.task), Text(label(c.metric)), "higher" if c.higher_is_better else "lower", Text(model),
                      str(c.n_pairs), number(c.baseline), number(c.candidate), f"{c.candidate - c.baseline:+.3g}",
                      f"{c.p:.2g}", "–" if c.p_holm is None else f"{c.p_holm:.2g}", verdict)
    return table


def gate_summary(result: CheckResult) -> Text:
    """One line saying what was gated and how (metric names come from users: Text, never markup)."""
    what = ("metric(s) " + ", ".join(result.metrics) + " (named with --metric)" if result.metrics
            else "each task's primary metric")
    return Text(f"gated: {what}, {len(result.gated)} comparison(s), paired Wilcoxon (Pratt's zeros), "
                f"Holm-corrected at p < {result.alpha}, "
                "a regression where the candidate is worse in the metric's direction (column 'better'); "
                "the other metrics are reported, not gated")


def print_check(result: CheckResult, console: Console | None = None) -> None:
    console = console or Console()
    if result.error is not None:
        print("error: " + " ".join(result.error.split()), file=sys.stderr)
        return
    console.print(check_table(result))
    console.print(gate_summary(result))
    for c in result.ungated:  # reasons hold model names and judgements.json text: Text, never markup
        drop = "a significant drop, " if c.significant_drop else ""
        console.print(Text(f"not gated ({drop}unreliable judge): {c.task} {label(c.metric)} ({c.candidate_model}): "
                           + "; ".join(c.unreliable), style="yellow"))
    count = len(result.regressions)
    console.print(f"[red]{count} regression(s)[/red]" if count else "[green]no regression[/green]")


def main(argv: list[str] | None = None, demand_ranges: dict[str, list[list[int]]] | None = None) -> int:
    """``selflengthen check``: print the comparison and return the exit code (0 ok, 1 regression, 2 bad input).
    ``demand_ranges``: the task YAMLs' (the harness passes them), for run directories given as either side."""
    parser = OneLineParser(prog="selflengthen check", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=path_argument, required=True, help="leaderboard.json or run directory")
    parser.add_argument("--candidate", type=path_argument, required=True, help="leaderboard.json or run directory")
    parser.add_argument("--metric", action="append", dest="metrics",
                        help="metric to gate on instead of each task's primary metric (repeatable); "
                             "the other scores are reported, not gated. A demand range's metric is the metric "
                             "and the range its task's YAML declares, e.g. 'S_l@[0,500)' or 'overall@[6000,8000]' "
                             "(the last range holds its high end): the same test over that range's prompts, "
                             "compared only when named")
    parser.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP,
                        help="tolerated worsening (a drop, or a rise where lower is better) as a fraction of the "
                             "baseline mean, finite and >= 0 (default %(default)s)")
    parser.add_argument("--alpha", type=float, default=ALPHA,
                        help="significance level of the Holm-corrected paired tests, in (0, 1) (default %(default)s)")
    parser.add_argument("--allow-subset", action="store_true",
                        help="compare a candidate that answered only some of the baseline's prompts on the shared "
                             "ones (without it that is unusable input, exit 2)")
    parser.add_argument("--debug", action="store_true", help="show the traceback behind an error")
    args = parser.parse_args(argv)

    def command() -> int:
        result = compare(args.baseline, args.candidate, args.metrics, args.max_drop, args.alpha, demand_ranges,
                         args.allow_subset)
        print_check(result)
        return result.exit_code

    return run_command(command, args.debug)


if __name__ == "__main__":
    sys.exit(main())
