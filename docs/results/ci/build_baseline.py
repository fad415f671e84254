"""Build the CI profile's committed baseline (issue #35 item 2) from the small run's committed answers.

    python docs/results/ci/build_baseline.py [--check]

For each arm in ARMS it reads docs/results/small/runs/<arm>/lm_eval/samples_<task>.jsonl (lm-eval's logged
answers, as `selflengthen eval` wrote them), keeps the profile's prompts (examples/ci.yaml: the tasks, and
doc_ids 0 to `limit` - 1, what lm-eval's --limit keeps), scores them with the function `selflengthen eval`
scores with (`tasks.scoring.score_lm_eval_samples`), writes the run directory docs/results/ci/<arm>/run/
(run.json: the small run's, with `ci_profile` saying where it came from; scores.json), then builds
docs/results/ci/<arm>/leaderboard.{json,md,html} with `selflengthen leaderboard`, as the profile's job does.
Nothing is evaluated again: the answers are the committed ones.

self_lengthen-final is the baseline CI compares with; base is the candidate of the dry run of the gate
(docs/results/ci/README.md). `--check` writes nothing: exit 1 when a committed file differs from what
this script would write, or a per-prompt score differs from the small run's scores.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # run as a script from anywhere in the repository
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from infra.journal import iter_jsonl, write_json_atomically  # noqa: E402
from tasks.scoring import score_lm_eval_samples  # noqa: E402

PROFILE = ROOT / "examples" / "ci.yaml"
SMALL_RUNS = ROOT / "docs" / "results" / "small" / "runs"
HERE = ROOT / "docs" / "results" / "ci"
ARMS = ("self_lengthen-final", "base")
"""The baseline CI compares with, then the dry run's candidate (the row a regression falls back to)."""
LEADERBOARD_FILES = ("leaderboard.json", "leaderboard.md", "leaderboard.html")


def profile() -> dict:
    """examples/ci.yaml as a mapping: its `tasks` and `limit` choose the prompts."""
    return yaml.safe_load(PROFILE.read_text(encoding="utf-8"))


def profile_samples(arm: str, tasks: list[str], limit: int) -> dict[str, list[dict]]:
    """lm-eval's logged samples of one small-run arm, per task, restricted to doc_ids 0 .. limit - 1."""
    samples = {}
    for task in tasks:
        path = SMALL_RUNS / arm / "lm_eval" / f"samples_{task}.jsonl"
        kept = [record for _, record in iter_jsonl(path, ValueError) if int(record["doc_id"]) < limit]
        if sorted(int(record["doc_id"]) for record in kept) != list(range(limit)):
            raise ValueError(f"{path} does not hold doc_ids 0 to {limit - 1} once each")
        samples[task] = kept
    return samples


def run_files(arm: str) -> dict[str, dict]:
    """The run directory's run.json and scores.json for one arm, as this script writes them."""
    settings = profile()
    tasks, limit = list(settings["tasks"]), int(settings["limit"])
    run = json.loads((SMALL_RUNS / arm / "run.json").read_text(encoding="utf-8"))
    run["tasks"] = tasks
    run["decoding"] = {task: run["decoding"][task] for task in tasks}
    run["ci_profile"] = {
        "profile": "examples/ci.yaml", "prompts_per_task": limit,
        "answers_from": f"docs/results/small/runs/{arm}/lm_eval (not evaluated again)",
        "built_by": "docs/results/ci/build_baseline.py",
    }
    scores = score_lm_eval_samples(profile_samples(arm, tasks, limit), model_name=run["model"])
    return {"run.json": run, "scores.json": scores}


def build_leaderboard(run_dir: Path, out_dir: Path) -> None:
    """`selflengthen leaderboard RUN_DIR --out OUT_DIR`, the profile job's own step."""
    from harness.cli import main

    code = main(["leaderboard", str(run_dir), "--out", str(out_dir)])
    if code != 0:
        raise SystemExit(f"error: selflengthen leaderboard {run_dir} exited {code}")


def per_prompt_differences(arm: str, scores: dict) -> list[str]:
    """Where a rebuilt per-prompt score differs from the small run's committed scores.json (none expected)."""
    committed = json.loads((SMALL_RUNS / arm / "scores.json").read_text(encoding="utf-8"))
    found = []
    for task, entry in scores["tasks"].items():
        by_id = {sample["doc_id"]: sample for sample in committed["tasks"][task]["samples"]}
        for sample in entry["samples"]:
            if sample["score"] != by_id[sample["doc_id"]]["score"]:
                found.append(f"{arm} {task} doc {sample['doc_id']}: {sample['score']} != "
                             f"{by_id[sample['doc_id']]['score']}")
    return found


def write(arm: str) -> None:
    files = run_files(arm)
    differences = per_prompt_differences(arm, files["scores.json"])
    if differences:
        raise SystemExit("error: " + "; ".join(differences))
    run_dir = HERE / arm / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        write_json_atomically(run_dir / name, content)
    build_leaderboard(run_dir.relative_to(ROOT), (HERE / arm).relative_to(ROOT))


def stale(arm: str) -> list[str]:
    """The committed files of one arm that differ from what `write` would produce now."""
    files = run_files(arm)
    found = per_prompt_differences(arm, files["scores.json"])
    for name, content in files.items():
        path = HERE / arm / "run" / name
        if not path.is_file() or json.loads(path.read_text(encoding="utf-8")) != content:
            found.append(str(path.relative_to(ROOT)))
    with tempfile.TemporaryDirectory() as scratch:
        board = Path(scratch) / arm
        build_leaderboard((HERE / arm / "run").relative_to(ROOT), board)
        path = HERE / arm / "leaderboard.json"
        if not path.is_file() or _without_created(path) != _without_created(board / "leaderboard.json"):
            found.append(str(path.relative_to(ROOT)))
    return found


def _without_created(path: Path) -> dict:
    """A leaderboard.json without its build time, the one field a rebuild changes."""
    board = json.loads(path.read_text(encoding="utf-8"))
    board.pop("created", None)
    return board


def main(argv: list[str]) -> int:
    import os

    os.chdir(ROOT)  # leaderboard.json records run directories by the path it was given: keep them relative
    if argv == ["--check"]:
        found = [item for arm in ARMS for item in stale(arm)]
        for item in found:
            print(f"stale: {item}")
        return 1 if found else 0
    if argv:
        print("usage: python docs/results/ci/build_baseline.py [--check]", file=sys.stderr)
        return 2
    for arm in ARMS:
        write(arm)
        print(f"wrote docs/results/ci/{arm}/run and docs/results/ci/{arm}/leaderboard.*")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
