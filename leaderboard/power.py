"""The power of the regression check: how often `selflengthen check` flags a candidate that fell back from one
leaderboard row (the baseline) to another (the candidate), at n prompts per task, so a CI gate can be sized.

Method: for each n, ``resamples`` times, each task on its own: draw n of the prompts both rows scored, uniformly
with replacement (numpy's default generator seeded with (seed, n), so an n's estimate does not depend on the
other sizes), keep each drawn prompt's pair of per-prompt scores (the baseline row's, the candidate row's), and
number the draws 0..n-1 so a prompt drawn twice is two pairs, as it would be in a benchmark of n prompts. The
two resampled rows then go through the check itself (leaderboard.check.compare_boards: the paired two-sided
Wilcoxon per gated metric, Holm over the gated metrics, worse in the metric's direction by more than max_drop
of the baseline mean); power = the share of resamples that exit 1, with its 95% Wilson interval. The smallest n
reaching the target: bisection between the largest tabled n below the target and the smallest at or above it,
assuming power grows with n (each n tried is estimated the same way).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from leaderboard.board import load_leaderboard
from leaderboard.check import DEFAULT_MAX_DROP, compare_boards, gate_metrics, settings_error
from leaderboard.errors import LeaderboardError, OneLineParser, path_argument, run_command
from leaderboard.stats import ALPHA

SIZES = (2, 10, 20, 40, 80)
RESAMPLES = 1000
SEED = 0
TARGET = 0.8
Z95 = 1.959963984540054


@dataclass(frozen=True)
class PowerConfig:
    """What to estimate. Rows: ``baseline`` (the good one) and ``candidate`` (the one a regression falls back
    to), by id. The check: ``metrics`` (empty: each task's primary metric), ``max_drop``, ``alpha``, as
    `selflengthen check` takes them. Resampling: ``sizes`` (prompts per task), ``resamples`` per size, ``seed``,
    and the ``target`` power whose smallest n is searched."""

    baseline: str
    candidate: str
    sizes: tuple[int, ...] = SIZES
    metrics: tuple[str, ...] = ()
    max_drop: float = DEFAULT_MAX_DROP
    alpha: float = ALPHA
    resamples: int = RESAMPLES
    seed: int = SEED
    target: float = TARGET


@dataclass(frozen=True)
class PowerPoint:
    """The estimated power at n prompts per task: flagged of resamples, with a 95% Wilson interval."""

    n: int
    flagged: int
    resamples: int

    @property
    def power(self) -> float:
        return self.flagged / self.resamples

    @property
    def interval(self) -> tuple[float, float]:
        p, r = self.power, self.resamples
        center = (p + Z95 ** 2 / (2 * r)) / (1 + Z95 ** 2 / r)
        half = Z95 * math.sqrt(p * (1 - p) / r + Z95 ** 2 / (4 * r * r)) / (1 + Z95 ** 2 / r)
        return max(0.0, center - half), min(1.0, center + half)

    def to_json(self) -> dict:
        return {"n": self.n, "power": self.power, "ci": list(self.interval), "flagged": self.flagged,
                "resamples": self.resamples}


@dataclass(frozen=True)
class PowerResult:
    """The table (one point per size), the smallest n reaching the target (None: not within the sizes), the gated
    (task, metric) pairs and the prompts each task resamples from."""

    config: PowerConfig
    points: list[PowerPoint]
    smallest_n: int | None
    gated: list[tuple[str, str]]
    pool_sizes: dict[str, int]

    def to_json(self) -> dict:
        return {"method": method_text(self.config), "config": asdict(self.config),
                "gated": [{"task": task, "metric": metric} for task, metric in self.gated],
                "prompts_resampled_from": self.pool_sizes, "points": [p.to_json() for p in self.points],
                "target": self.config.target, "smallest_n": self.smallest_n}


def method_text(config: PowerConfig) -> str:
    gated = ", ".join(config.metrics) + " (named with --metric)" if config.metrics else "each task's primary metric"
    return (f"power of `selflengthen check` (gated: {gated}; max drop {config.max_drop:g} of the baseline mean; "
            f"Holm at alpha {config.alpha:g}) to flag {config.candidate} against the baseline {config.baseline}: "
            f"per n, {config.resamples} resamples (seed {config.seed}), each task's n prompts drawn with replacement "
            "from the prompts both rows scored, paired, each draw a prompt of its own; power = the share of "
            "resamples the check fails (exit 1), 95% Wilson interval; smallest n by bisection between the tabled "
            "sizes, assuming power grows with n")


@dataclass(frozen=True)
class _Pools:
    """Per task, the two rows' samples of the prompts both scored, aligned, reduced to what the gate reads."""

    baseline: dict
    candidate: dict
    samples: dict[str, tuple[list[dict], list[dict]]]

    def resampled(self, n: int, rng: np.random.Generator) -> tuple[dict, dict]:
        """Two one-row boards of n prompts per task, drawn with replacement, paired, numbered 0..n-1."""
        old, new = dict(self.baseline, tasks={}), dict(self.candidate, tasks={})
        for task, (before, after) in self.samples.items():
            picks = rng.integers(len(before), size=n)
            old["tasks"][task] = dict(self.baseline["tasks"][task],
                                      samples=[dict(before[j], doc_id=i) for i, j in enumerate(picks)])
            new["tasks"][task] = dict(self.candidate["tasks"][task],
                                      samples=[dict(after[j], doc_id=i) for i, j in enumerate(picks)])
        return {"rows": [old]}, {"rows": [new]}


def _row(board: dict, row_id: str, role: str) -> dict:
    for row in board["rows"]:
        if row["id"] == row_id:
            return row
    known = ", ".join(row["id"] for row in board["rows"])
    raise LeaderboardError(f"no row {row_id!r} ({role}) in the leaderboard; its rows: {known}")


def _gated_entry(entry: dict, metrics: tuple[str, ...]) -> dict:
    """The task entry with only its gated metrics, so the resampled check computes nothing it does not gate."""
    gate = gate_metrics(entry, metrics)
    return dict(entry, metrics={m: spec for m, spec in entry["metrics"].items() if m in gate})


def _pools(board: dict, config: PowerConfig) -> _Pools:
    old, new = _row(board, config.baseline, "--baseline"), _row(board, config.candidate, "--candidate")
    full = compare_boards({"rows": [old]}, {"rows": [new]}, list(config.metrics), config.max_drop,
                          f"rows {config.baseline} and {config.candidate}", config.alpha, allow_subset=True)
    if full.error is not None:  # an unknown or undirected metric, or no common task: what check would refuse
        raise LeaderboardError(full.error)
    tasks = list(dict.fromkeys(c.task for c in full.gated))
    if not tasks:  # every chosen metric is a judge's the check does not trust: it could never fail
        reasons = "; ".join(f"{c.task} {c.metric}: {'; '.join(c.unreliable)}" for c in full.ungated)
        raise LeaderboardError(f"nothing gated between rows {config.baseline} and {config.candidate}: {reasons}")
    old_tasks, new_tasks, samples = {}, {}, {}
    for task in tasks:
        old_tasks[task], new_tasks[task] = (_gated_entry(row["tasks"][task], config.metrics) for row in (old, new))
        fields = {"doc_id", "type"} | {spec["field"] for spec in old_tasks[task]["metrics"].values()}
        after = {s["doc_id"]: s for s in new["tasks"][task]["samples"]}
        shared = [s["doc_id"] for s in old["tasks"][task]["samples"] if s["doc_id"] in after]
        before = {s["doc_id"]: s for s in old["tasks"][task]["samples"]}
        samples[task] = ([{k: v for k, v in before[d].items() if k in fields} for d in shared],
                         [{k: v for k, v in after[d].items() if k in fields} for d in shared])
    return _Pools(dict(old, tasks=old_tasks), dict(new, tasks=new_tasks), samples)


def _point(pools: _Pools, config: PowerConfig, n: int) -> PowerPoint:
    rng = np.random.default_rng([config.seed, n])
    flagged = 0
    for _ in range(config.resamples):
        old, new = pools.resampled(n, rng)
        flagged += compare_boards(old, new, list(config.metrics), config.max_drop, alpha=config.alpha).exit_code == 1
    return PowerPoint(n, flagged, config.resamples)


def config_error(config: PowerConfig) -> str | None:
    """Why the settings are unusable (one line), or None."""
    if not config.sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in config.sizes):
        return f"every n must be a whole number of prompts >= 2, got {', '.join(map(str, config.sizes)) or 'none'}"
    if config.resamples < 1:
        return f"--resamples must be >= 1, got {config.resamples}"
    if not 0 < config.target <= 1:
        return f"--target must be a power in (0, 1], got {config.target}"
    return settings_error(config.max_drop, config.alpha)


def estimate_power(board: dict, config: PowerConfig) -> PowerResult:
    """The power table and the smallest n reaching the target; a LeaderboardError for unusable settings or rows."""
    error = config_error(config)
    if error is not None:
        raise LeaderboardError(error)
    pools = _pools(board, config)
    estimates: dict[int, PowerPoint] = {}

    def point(n: int) -> PowerPoint:
        if n not in estimates:
            estimates[n] = _point(pools, config, n)
        return estimates[n]

    sizes = sorted(set(config.sizes))
    points = [point(n) for n in sizes]
    reached = [p.n for p in points if p.power >= config.target]
    smallest = None
    if reached:
        high = reached[0]
        low = max([n for n in sizes if n < high], default=1)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if point(middle).power >= config.target else (middle, high)
        smallest = high
    gated = [(task, metric) for task, entry in pools.baseline["tasks"].items() for metric in entry["metrics"]]
    return PowerResult(config, points, smallest, gated, {task: len(b) for task, (b, _) in pools.samples.items()})


def power_table(result: PowerResult) -> Table:
    table = Table(title=f"power of the check: {result.config.baseline} → {result.config.candidate}",
                  title_justify="left")
    for name in ("prompts per task", "power", "95% interval", "flagged"):
        table.add_column(name, justify="right")
    for p in result.points:
        low, high = p.interval
        table.add_row(str(p.n), f"{p.power:.0%}", f"[{low:.0%}, {high:.0%}]", f"{p.flagged} / {p.resamples}")
    return table


def print_power(result: PowerResult, console: Console | None = None) -> None:
    """The method, the table and the smallest n (row and metric names come from the file: Text, never markup)."""
    console = console or Console()
    console.print(Text("method: " + method_text(result.config)))
    console.print(Text("gated: " + ", ".join(f"{task} {metric}" for task, metric in result.gated) + "; prompts "
                       "resampled from: " + ", ".join(f"{task} {n}" for task, n in result.pool_sizes.items())))
    console.print(power_table(result))
    target = f"{result.config.target:.0%}"
    if result.smallest_n is None:
        console.print(Text(f"power {target} not reached at up to {max(result.config.sizes)} prompts per task"))
    else:
        console.print(Text(f"smallest n with power >= {target}: {result.smallest_n} prompts per task"))


def _sizes(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise ValueError(f"--sizes takes whole numbers separated by commas, got {value!r}") from None


def main(argv: list[str] | None = None) -> int:
    """``selflengthen power``: print the method, the table and the smallest n (or JSON); 0, or 2 on bad input."""
    parser = OneLineParser(prog="selflengthen power", description=__doc__.splitlines()[0])
    parser.add_argument("leaderboard", type=path_argument, help="leaderboard.json holding both rows")
    parser.add_argument("--baseline", required=True, help="id of the good row (e.g. self_lengthen/final)")
    parser.add_argument("--candidate", required=True, help="id of the row a regression falls back to (e.g. base)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="prompts per task to estimate, comma-separated, each >= 2 (default %(default)s)")
    parser.add_argument("--metric", action="append", dest="metrics", default=[],
                        help="metric the check gates instead of each task's primary metric (repeatable)")
    parser.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP,
                        help="the check's tolerance, a fraction of the baseline mean (default %(default)s)")
    parser.add_argument("--alpha", type=float, default=ALPHA,
                        help="the check's significance level (default %(default)s)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="resamples per size (default %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the resampling (default %(default)s)")
    parser.add_argument("--target", type=float, default=TARGET,
                        help="power whose smallest n is searched (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    parser.add_argument("--debug", action="store_true", help="show the traceback behind an error")
    args = parser.parse_args(argv)

    def command() -> int:
        try:
            sizes = _sizes(args.sizes)
        except ValueError as error:
            raise LeaderboardError(str(error)) from None
        config = PowerConfig(args.baseline, args.candidate, sizes, tuple(args.metrics), args.max_drop, args.alpha,
                             args.resamples, args.seed, args.target)
        result = estimate_power(load_leaderboard(Path(args.leaderboard)), config)
        if args.json:
            print(json.dumps(result.to_json(), indent=1))
        else:
            print_power(result)
        return 0

    return run_command(command, args.debug)


if __name__ == "__main__":
    sys.exit(main())
