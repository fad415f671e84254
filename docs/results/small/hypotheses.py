"""Answer the pre-registered hypotheses of docs/results/small/README.md from a committed leaderboard.json.

    python docs/results/small/hypotheses.py docs/results/small/leaderboard.json [--out FILE]

It reads only that file (every row keeps its per-prompt values) and prints Markdown: the issue's two
counts (paired prompts per task, Generator examples per iteration), then H1-H4 with their figures and a
verdict each. A baseline row not scored yet leaves H4 unanswered for it and is said so; H1-H3 do not read
those rows, so their answers do not wait for them (a run finished in parts). H1 and H3 are the leaderboard's own `vs_base` tests, read as they are; H2 and H4 are not in
the file as numbers, so they are computed here: H2 with a permutation test (standard library only), H4
with the leaderboard's own paired test (`leaderboard.stats.paired_test`) between rows. Errors are one
`error:` line and exit 2.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # run as a script from anywhere in the repository
    sys.path.insert(0, str(ROOT))

from infra.journal import write_text_atomically  # noqa: E402
from leaderboard.board import load_leaderboard, metric_values  # noqa: E402
from leaderboard.errors import LeaderboardError, OneLineParser, path_argument, run_command  # noqa: E402
from leaderboard.render_markdown import md_text  # noqa: E402
from leaderboard.stats import ALPHA, paired_test  # noqa: E402

# The pre-registered primary metric of each task (H1, H4).
PRIMARY = {"longbench_write_en_small": "S_l", "longen_en_small": "overall"}
REPETITION = "repeated_10gram_share"
BASELINES = ("backtranslation", "imitation")
FINAL_ARM = "self_lengthen/final"
MIN_PAIRS = 40
MIN_GENERATOR_EXAMPLES = 16
MIN_SELF_ENDED = 5
"""H2 is not tested for a model with fewer answers that ended by themselves (over both tasks)."""
PERMUTATIONS = 9999
SEED = 0


def find_rows(board: dict) -> dict[str, dict]:
    """The rows the hypotheses name: base, iter_1, iter_2, final (exactly one each), and backtranslation and
    imitation (at most one each: a baseline not scored yet is left out)."""
    wanted = {"base": lambda r: r.get("is_base"),
              "iter_1": lambda r: r.get("arm") == "self_lengthen" and r.get("iteration") == 1,
              "iter_2": lambda r: r.get("arm") == "self_lengthen" and r.get("iteration") == 2,
              "final": lambda r: r.get("arm") == FINAL_ARM,
              **{arm: (lambda r, arm=arm: r.get("arm") == arm) for arm in BASELINES}}
    rows = {}
    for name, matches in wanted.items():
        found = [row for row in board["rows"] if matches(row)]
        if not found and name in BASELINES:
            continue
        if len(found) != 1:
            raise LeaderboardError(f"the leaderboard has {len(found)} rows for {name} (arm/iteration or is_base); "
                                   "the hypotheses need exactly one")
        rows[name] = found[0]
    for name, row in rows.items():
        missing = [task for task in PRIMARY if task not in row["tasks"]]
        if missing:
            raise LeaderboardError(f"row {row['id']!r} ({name}) has no scores for {', '.join(missing)}")
    return rows


def self_ended_words(row: dict, task: str) -> tuple[list[float], int]:
    """Words of the answers that ended by themselves (`ended_at_cap` false), and how many have no finish reason."""
    samples = row["tasks"][task]["samples"]
    words = [float(s["words"]) for s in samples if s.get("ended_at_cap") is False and s.get("words") is not None]
    unknown = sum(1 for s in samples if s.get("ended_at_cap") is None)
    return words, unknown


def growth_p(earlier: dict[str, list[float]], later: dict[str, list[float]], rng: random.Random) -> float:
    """One-sided permutation p that the pooled mean of `later` exceeds that of `earlier` by chance: the two
    models' labels are shuffled within each task (so a different mix of tasks is not taken for growth)."""
    def pooled_difference(groups: dict[str, tuple[list[float], list[float]]]) -> float:
        first = [w for a, _ in groups.values() for w in a]
        second = [w for _, b in groups.values() for w in b]
        return sum(second) / len(second) - sum(first) / len(first)

    groups = {task: (earlier[task], later[task]) for task in earlier}
    observed = pooled_difference(groups)
    at_least = 0
    for _ in range(PERMUTATIONS):
        shuffled = {}
        for task, (a, b) in groups.items():
            both = a + b
            rng.shuffle(both)
            shuffled[task] = (both[:len(a)], both[len(a):])
        at_least += pooled_difference(shuffled) >= observed - 1e-9
    return (1 + at_least) / (1 + PERMUTATIONS)


def _test_line(test: dict | None, better: str) -> tuple[str, bool]:
    """A vs_base test as text, and whether it supports the predicted direction (`better`: 'higher' or 'lower')."""
    if test is None:
        return "no paired test (no shared prompts)", False
    direction_ok = test["diff"] > 0 if better == "higher" else test["diff"] < 0
    supported = direction_ok and test["p"] < ALPHA
    return f"diff {test['diff']:+.4g}, p = {test['p']:.3g} (two-sided), {test['n_pairs']} pairs", supported


def _verdict(supported: bool) -> str:
    return "**supported**" if supported else "**not supported**"


def counts_section(rows: dict[str, dict]) -> list[str]:
    lines = ["## The issue's counts", "", "| row | " + " | ".join(f"{md_text(t)} pairs" for t in PRIMARY) + " |",
             "|---|" + "---|" * len(PRIMARY)]
    for row in rows.values():
        cells = []
        for task, metric in PRIMARY.items():
            spec = row["tasks"][task]["metrics"].get(metric) or {"n": 0, "vs_base": None}
            n = spec["n"] if row.get("is_base") else (spec["vs_base"] or {"n_pairs": 0})["n_pairs"]
            cells.append(f"{n}" + ("" if n >= MIN_PAIRS else f" (below {MIN_PAIRS})"))
        lines.append(f"| {md_text(row['id'])} | " + " | ".join(cells) + " |")
    lines.append("")
    for name in ("iter_1", "iter_2"):
        stats = rows[name]["train_stats"] or {}
        samples = stats.get("samples")
        mark = "" if isinstance(samples, (int, float)) and samples >= MIN_GENERATOR_EXAMPLES else \
            f" (below {MIN_GENERATOR_EXAMPLES})"
        lines.append(f"- {md_text(rows[name]['id'])}: {samples} Generator training examples{mark}")
    return lines + [""]


def vs_base_section(rows: dict[str, dict], label: str, title: str, metric_of, better: str) -> list[str]:
    """H1 or H3: per task the final row's `vs_base` test of one metric; supported overall only on both tasks."""
    lines = [f"## {label}: {title}", ""]
    all_supported = True
    for task in PRIMARY:
        metric = metric_of(task)
        final = rows["final"]["tasks"][task]["metrics"].get(metric)
        base = rows["base"]["tasks"][task]["metrics"].get(metric)
        if final is None or base is None:
            lines.append(f"- {md_text(task)} {md_text(metric)}: not in the leaderboard — **not supported**")
            all_supported = False
            continue
        text, supported = _test_line(final["vs_base"], better)
        all_supported &= supported
        lines.append(f"- {md_text(task)} {md_text(metric)}: base {base['value']:.4g}, final {final['value']:.4g}; "
                     f"{text} — {_verdict(supported)}")
    return lines + ["", f"{label} overall (both tasks): {_verdict(all_supported)}", ""]


def h2_section(rows: dict[str, dict]) -> list[str]:
    order = ("base", "iter_1", "iter_2")
    header = [f"{md_text(task)}: n, mean words" for task in PRIMARY] + ["both tasks: n, mean words"]
    lines = ["## H2: mean words of the answers that end by themselves grow base → iteration 1 → iteration 2", "",
             "| row | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    words, unknown_total = {}, {}
    for name in order:
        row = rows[name]
        per_task, cells, unknown = {}, [], 0
        for task in PRIMARY:
            values, missing = self_ended_words(row, task)
            per_task[task] = values
            unknown += missing
            cells.append(f"{len(values)}, {sum(values) / len(values):.1f}" if values else "0, -")
        pooled = [w for values in per_task.values() for w in values]
        cells.append(f"{len(pooled)}, {sum(pooled) / len(pooled):.1f}" if pooled else "0, -")
        words[name], unknown_total[name] = per_task, unknown
        lines.append(f"| {md_text(row['id'])} | " + " | ".join(cells) + " |")
    lines.append("")
    if any(unknown_total.values()):
        lines.append("Answers without a known finish reason (left out): " + ", ".join(
            f"{md_text(rows[name]['id'])} {count}" for name, count in unknown_total.items() if count) + ".")
        lines.append("")
    rng = random.Random(SEED)
    supported = True
    for earlier, later in zip(order, order[1:]):
        sizes = {name: sum(len(v) for v in words[name].values()) for name in (earlier, later)}
        if min(sizes.values()) < MIN_SELF_ENDED:
            lines.append(f"- {md_text(rows[earlier]['id'])} → {md_text(rows[later]['id'])}: fewer than "
                         f"{MIN_SELF_ENDED} answers ended by themselves, not tested")
            supported = False
            continue
        first = [w for v in words[earlier].values() for w in v]
        second = [w for v in words[later].values() for w in v]
        difference = sum(second) / len(second) - sum(first) / len(first)
        p = growth_p(words[earlier], words[later], rng)
        step_ok = difference > 0 and p < ALPHA
        supported &= step_ok
        lines.append(f"- {md_text(rows[earlier]['id'])} → {md_text(rows[later]['id'])}: {difference:+.1f} words, "
                     f"one-sided permutation p = {p:.3g} ({PERMUTATIONS} permutations within task, seed {SEED})")
    return lines + ["", f"H2: {_verdict(supported)}", ""]


def h4_section(rows: dict[str, dict]) -> list[str]:
    lines = ["## H4: the final arm against each baseline (two-sided, reported either way)", "",
             "| baseline | task | metric | final | baseline | diff (final − baseline) | p | pairs | reading |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm in BASELINES:
        if arm not in rows:
            lines.append(f"| {arm} | - | - | - | - | - | - | 0 | not scored yet: no row in this leaderboard |")
            continue
        for task, primary in PRIMARY.items():
            for metric in (primary, REPETITION):
                final_entry, other_entry = rows["final"]["tasks"][task], rows[arm]["tasks"][task]
                if metric not in final_entry["metrics"] or metric not in other_entry["metrics"]:
                    continue
                test = paired_test(metric_values(other_entry, metric), metric_values(final_entry, metric))
                if test is None:
                    reading, diff, p, pairs = "no shared prompts", "-", "-", "0"
                else:
                    reading = ("final higher" if test.diff > 0 else "final lower") if test.significant \
                        else "no significant difference"
                    diff, p, pairs = f"{test.diff:+.4g}", f"{test.p:.3g}", str(test.n_pairs)
                values = " | ".join(f"{entry['metrics'][metric]['value']:.4g}" for entry in (final_entry, other_entry))
                lines.append(f"| {md_text(rows[arm]['id'])} | {md_text(task)} | {md_text(metric)} | {values} | "
                             f"{diff} | {p} | {pairs} | {reading} |")
    return lines + [""]


def answers(board: dict) -> str:
    """The Markdown answers to H1-H4 for a loaded leaderboard."""
    rows = find_rows(board)
    lines = ["# Answers to the pre-registered hypotheses", "",
             f"From leaderboard.json created {md_text(board.get('created'))}; base row {md_text(rows['base']['id'])}, "
             f"final arm {md_text(rows['final']['id'])}. Significant: p < {ALPHA}.", ""]
    lines += counts_section(rows)
    lines += vs_base_section(rows, "H1", "the final arm's length score is higher than the base's",
                             lambda task: PRIMARY[task], "higher")
    lines += h2_section(rows)
    lines += vs_base_section(rows, "H3", "the final arm's repeated 10-gram share is lower than the base's",
                             lambda task: REPETITION, "lower")
    lines += h4_section(rows)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="hypotheses.py", description=__doc__.splitlines()[0])
    parser.add_argument("leaderboard", type=path_argument, help="the committed leaderboard.json")
    parser.add_argument("--out", type=path_argument, help="also write the Markdown to this file")
    parser.add_argument("--debug", action="store_true", help="show the traceback behind an error")
    args = parser.parse_args(argv)

    def command() -> int:
        text = answers(load_leaderboard(args.leaderboard))
        if args.out:
            write_text_atomically(args.out, text + "\n")
        print(text)
        return 0

    return run_command(command, args.debug)


if __name__ == "__main__":
    sys.exit(main())
