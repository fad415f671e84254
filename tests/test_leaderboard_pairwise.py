"""The pairwise judge's win rates on the leaderboard (#38 item 4), and the training table's matched budget: in
leaderboard.json and every view, their untrusted names and texts escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from leaderboard.board import load_leaderboard
from leaderboard.build import build_leaderboard
from leaderboard.errors import LeaderboardError
from leaderboard.publish import publish
from leaderboard.render_terminal import print_leaderboard
from tests.chromium import CHROMIUM, chromium
from tests.html_structure import Structure
from tests.leaderboard_payloads import PAYLOADS
from tests.leaderboard_runs import make_experiment

TASK = "longbench_write_en_mini"


def pairwise_report(reference: str = "smollm2-135m", judge: str = "qwen2.5-7b-instruct", **rates) -> dict:
    """A pairwise.json as judges/pairwise.py writes it, one task compared."""
    task = {"n": 15, "failures": 1, "win_rate": 0.62, "win_rate_ci": [0.45, 0.78], "lc_win_rate": 0.55,
            "position_bias_rate": 0.2, "weighted_samples": 0, "samples": []} | rates
    return {"judge": {"model": judge, "rubric": "pairwise"}, "reference": reference, "tasks": {TASK: task}}


def experiment(root: Path, report: dict | None, budget: str | None = None) -> list[Path]:
    """The hand-made runs; sl-iter2 judged pairwise with ``report`` and its train_stats given ``budget``."""
    runs = make_experiment(root)
    iter2 = next(run for run in runs if run.name == "sl-iter2")
    if report is not None:
        (iter2 / "pairwise.json").write_text(json.dumps(report), encoding="utf-8")
    if budget is not None:
        run = json.loads((iter2 / "run.json").read_text(encoding="utf-8"))
        run["train_stats"]["matched_budget"] = budget
        (iter2 / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return runs


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("pairwise")
    paths = publish(experiment(root / "runs", pairwise_report(), "examples: 6, seeded subsample"), None, root / "out")
    console = Console(record=True, width=400)
    print_leaderboard(load_leaderboard(paths["json"]), console)
    return {kind: path.read_text(encoding="utf-8") for kind, path in paths.items()} | {
        "terminal": console.export_text()}


def test_a_pairwise_report_puts_the_win_rates_of_its_tasks_in_leaderboard_json(published):
    board = json.loads(published["json"])
    rows = {row["id"]: row["tasks"] for row in board["rows"]}
    assert rows["sl-iter2"][TASK]["pairwise"] == {
        "reference": "smollm2-135m", "judge": "qwen2.5-7b-instruct", "n": 15, "failures": 1, "win_rate": 0.62,
        "win_rate_ci": [0.45, 0.78], "lc_win_rate": 0.55, "lc_win_rate_ci": None, "position_bias_rate": 0.2}
    assert "pairwise" not in rows["sl-iter1"][TASK] and "pairwise" not in rows["sl-iter2"]["longen_mini"]


@pytest.mark.parametrize("kind", ["markdown", "html", "terminal"])
def test_every_view_shows_the_win_rate_with_its_interval_and_the_length_controlled_one(published, kind):
    text = " ".join(published[kind].split())
    assert "against smollm2-135m, judged by qwen2.5-7b-instruct" in text
    assert all(part in text for part in ("62% [45%, 78%]", "55%", "14 of 15", "LC win rate"))


def test_a_length_controlled_interval_in_the_report_is_shown_beside_it(tmp_path):
    board = build_leaderboard(experiment(tmp_path, pairwise_report(lc_win_rate_ci=[0.4, 0.7])), None)
    console = Console(record=True, width=400)
    print_leaderboard(board, console)
    assert "55% [40%, 70%]" in console.export_text()


def test_no_pairwise_table_without_a_pairwise_report(tmp_path):
    paths = publish(experiment(tmp_path / "runs", None), None, tmp_path / "out")
    assert "Pairwise judge" not in paths["markdown"].read_text(encoding="utf-8")
    assert "Pairwise judge" not in paths["html"].read_text(encoding="utf-8")


def test_a_win_rate_outside_zero_to_one_is_refused_naming_the_file_and_field(tmp_path):
    with pytest.raises(LeaderboardError, match=r"pairwise.json: tasks\['longbench_write_en_mini'\]\.win_rate must be "
                                               r"a number from 0 to 1 or null, got 62"):
        build_leaderboard(experiment(tmp_path, pairwise_report(win_rate=62)), None)


def test_the_matched_budget_is_a_fact_of_the_training_table(published):
    markdown_table = published["markdown"].split("## Training data per arm")[1].split("## Method")[0]
    assert "| matched budget |" in markdown_table and "| examples: 6, seeded subsample |" in markdown_table
    assert "<th>matched budget</th>" in published["html"] and "examples: 6, seeded subsample" in published["html"]
    assert json.loads(published["json"])["rows"][2]["train_stats"]["matched_budget"] == "examples: 6, seeded subsample"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict:
    """Published with a payload as the reference's name, the judge's and the matched budget."""
    root = tmp_path_factory.mktemp("hostile_pairwise")
    report = pairwise_report(reference=PAYLOADS[0] + " [/bold]", judge=PAYLOADS[1])
    paths = publish(experiment(root / "runs", report, PAYLOADS[5] + " | **b**"), None, root / "out")
    console = Console(record=True, width=400)
    print_leaderboard(load_leaderboard(paths["json"]), console)
    return {"paths": paths, "root": root, "terminal": console.export_text()}


def test_hostile_pairwise_and_budget_text_stays_text_in_markdown_and_the_terminal(hostile):
    markdown = hostile["paths"]["markdown"].read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\[/bold\\]" in markdown and "<script>" not in markdown
    assert "\\| \\*\\*b\\*\\*" in markdown
    assert PAYLOADS[0] + " [/bold]" in hostile["terminal"]


@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_hostile_pairwise_and_budget_text_is_shown_as_text_in_chromium(hostile):
    dom = Structure(chromium(hostile["paths"]["html"], hostile["root"] / "profile", "--dump-dom"))
    counts = {tag: sum(n for (name, _), n in dom.elements.items() if name == tag) for tag in ("script", "img")}
    assert counts == {"script": 1, "img": 0}
    assert not any(name.startswith("on") or name == "data-pwned" for name, _ in dom.attributes)
    text = "".join(dom.text)
    assert all(payload in text for payload in (PAYLOADS[0], PAYLOADS[1], PAYLOADS[5]))
