"""The regression check: is a candidate significantly worse than a baseline on any task and metric?

Both sides are leaderboard.json files or run directories. Rows are matched by model name (or, when each
side has exactly one row, to each other); per task and metric the same prompts (doc_ids) are compared
with the paired Wilcoxon test of leaderboard/stats.py. A comparison is a regression when the candidate
is lower, p < 0.05, and the drop of the mean over the shared prompts exceeds ``max_drop`` times the
baseline's mean (a relative tolerance, so one setting fits 0-1 and 0-100 scores). A judge quality metric
whose judge is unreliable on either side (leaderboard/trust.py) is compared and shown but not gated.
Exit codes: 0 no regression, 1 a regression, 2 unusable input or any other error (1 means a regression only).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from leaderboard.board import load_leaderboard, metric_values
from leaderboard.build import build_leaderboard
from leaderboard.errors import LeaderboardError, run_command
from leaderboard.format import label, number
from leaderboard.stats import ALPHA, paired_test
from leaderboard.trust import unreliable_reasons
from leaderboard.validate import is_number

DEFAULT_MAX_DROP = 0.02


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
    not_gated: tuple[str, ...] = ()  # why this metric is not trusted (an unreliable judge); empty: gated

    @property
    def drop(self) -> float:
        return self.baseline - self.candidate

    @property
    def significant_drop(self) -> bool:
        return self.p < ALPHA and self.drop > self.allowed_drop

    @property
    def regression(self) -> bool:
        return self.significant_drop and not self.not_gated


@dataclass(frozen=True)
class CheckResult:
    """All comparisons, or the one-line reason the inputs could not be compared."""

    comparisons: list[Comparison] = field(default_factory=list)
    error: str | None = None

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.regression]

    @property
    def ungated(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.not_gated]

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return 2
        return 1 if self.regressions else 0


def _load(path: Path) -> dict:
    path = Path(path)
    if path.is_dir():
        return build_leaderboard([path], base=None)
    return load_leaderboard(path)


def _pairs(baseline: dict, candidate: dict) -> list[tuple[dict, dict]]:
    if len(baseline["rows"]) == 1 and len(candidate["rows"]) == 1:
        return [(baseline["rows"][0], candidate["rows"][0])]
    by_id = {row["id"]: row for row in candidate["rows"]}
    return [(row, by_id[row["id"]]) for row in baseline["rows"] if row["id"] in by_id]


def _compare_rows(old: dict, new: dict, metrics: list[str] | None, max_drop: float) -> list[Comparison]:
    found = []
    for task, old_entry in old["tasks"].items():
        new_entry = new["tasks"].get(task)
        if new_entry is None:
            continue
        names = metrics or [m for m, spec in old_entry["metrics"].items() if spec.get("higher_is_better")]
        for metric in names:
            if metric not in old_entry["metrics"] or metric not in new_entry["metrics"]:
                continue
            before, after = metric_values(old_entry, metric), metric_values(new_entry, metric)
            test = paired_test(before, after)
            if test is None:
                continue
            shared = set(before) & set(after)
            base_mean = sum(before[d] for d in shared) / len(shared)
            reasons = [f"{side} {row['id']}: {reason}" for side, row, entry in
                       (("baseline", old, old_entry), ("candidate", new, new_entry))
                       for reason in unreliable_reasons(entry, metric)]
            found.append(Comparison(task, metric, old["id"], new["id"], test.n_pairs, base_mean,
                                    base_mean + test.diff, test.p, max_drop * abs(base_mean), tuple(reasons)))
    return found


def compare(baseline: Path, candidate: Path, metrics: list[str] | None = None,
            max_drop: float = DEFAULT_MAX_DROP) -> CheckResult:
    """Compare two leaderboards (or run directories) per task and metric over shared prompts."""
    if not (is_number(max_drop) and max_drop >= 0):
        return CheckResult(error=f"--max-drop must be a finite number >= 0, got {max_drop!r}")
    try:
        old, new = _load(baseline), _load(candidate)
    except LeaderboardError as error:
        return CheckResult(error=str(error))
    pairs = _pairs(old, new)
    if not pairs:
        return CheckResult(error=f"no model appears in both {baseline} and {candidate}")
    comparisons = [c for old_row, new_row in pairs for c in _compare_rows(old_row, new_row, metrics, max_drop)]
    if not comparisons:
        wanted = f" for metric(s) {', '.join(metrics)}" if metrics else ""
        return CheckResult(error=f"no common task with shared prompts{wanted} in {baseline} and {candidate}")
    return CheckResult(comparisons)


def check_table(result: CheckResult) -> Table:
    """A rich table of every comparison, regressions in red, metrics of an unreliable judge 'not gated'."""
    table = Table(title="regression check (candidate vs. baseline, paired over shared prompts)", title_justify="left")
    for name in ("task", "metric", "model", "n", "baseline", "candidate", "change", "p", "verdict"):
        table.add_column(name, justify="left" if name in ("task", "metric", "model", "verdict") else "right",
                         no_wrap=name == "verdict", min_width=10 if name == "verdict" else None)
    for c in result.comparisons:
        model = c.candidate_model
        if c.candidate_model != c.baseline_model:
            model = f"{c.baseline_model} → {c.candidate_model}"
        verdict = Text("REGRESSION", style="red") if c.regression else Text("ok", style="green")
        if c.not_gated:
            verdict = Text("not gated", style="yellow")
        table.add_row(Text(c.task), Text(label(c.metric)), Text(model), str(c.n_pairs), number(c.baseline), number(c.candidate),
                      f"{-c.drop:+.3g}", f"{c.p:.2g}", verdict)
    return table


def print_check(result: CheckResult, console: Console | None = None) -> None:
    console = console or Console()
    if result.error is not None:
        print("error: " + " ".join(result.error.split()), file=sys.stderr)
        return
    console.print(check_table(result))
    for c in result.ungated:  # reasons hold model names and judgements.json text: Text, never markup
        drop = "a significant drop, " if c.significant_drop else ""
        console.print(Text(f"not gated ({drop}unreliable judge): {c.task} {label(c.metric)} ({c.candidate_model}): "
                           + "; ".join(c.not_gated), style="yellow"))
    count = len(result.regressions)
    console.print(f"[red]{count} regression(s)[/red]" if count else "[green]no regression[/green]")


def main(argv: list[str] | None = None) -> int:
    """``selflengthen check``: print the comparison and return the exit code (0 ok, 1 regression, 2 bad input)."""
    parser = argparse.ArgumentParser(prog="selflengthen check", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="leaderboard.json or run directory")
    parser.add_argument("--candidate", type=Path, required=True, help="leaderboard.json or run directory")
    parser.add_argument("--metric", action="append", dest="metrics",
                        help="metric to compare (repeatable); default: every score where higher is better")
    parser.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP,
                        help="tolerated drop as a fraction of the baseline mean, finite and >= 0 (default %(default)s)")
    parser.add_argument("--debug", action="store_true", help="show the traceback behind an error")
    args = parser.parse_args(argv)

    def command() -> int:
        result = compare(args.baseline, args.candidate, args.metrics, args.max_drop)
        print_check(result)
        return result.exit_code

    return run_command(command, args.debug)


if __name__ == "__main__":
    sys.exit(main())
