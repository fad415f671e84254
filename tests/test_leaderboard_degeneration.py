"""Degeneration metrics in leaderboard.json and its views, and the views readable with them (80-column log)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console

from leaderboard.board import load_leaderboard
from leaderboard.build import DEGENERATION, build_leaderboard
from leaderboard.errors import LeaderboardError
from leaderboard.publish import publish
from leaderboard.render_html import render_html
from leaderboard.render_markdown import render_markdown
from leaderboard.render_terminal import print_leaderboard
from tests.leaderboard_degeneration import RUN_NAMES, make_degenerate_experiment

LBW = "longbench_write_en_mini"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("degeneration")
    runs = make_degenerate_experiment(root / "runs", renamed=True)
    paths = publish(runs, None, root / "out")
    return runs, paths, load_leaderboard(paths["json"])


def entry(board: dict, model: str, task: str = LBW) -> dict:
    return next(r for r in board["rows"] if r["id"] == model)["tasks"][task]


def test_each_degeneration_metric_has_an_interval_a_paired_test_and_its_direction(published):
    metrics = entry(published[2], "self_lengthen/iter_3")["metrics"]
    for name, higher_is_better in DEGENERATION.items():
        spec = metrics[name]
        assert spec["higher_is_better"] is higher_is_better and spec["field"] == name
        assert spec["ci"][0] <= spec["value"] <= spec["ci"][1] and spec["vs_base"]["n_pairs"] == 15
    assert metrics["repeated_10gram_share"]["vs_base"]["significant"]
    assert metrics["repeated_10gram_share"]["vs_base"]["diff"] < 0
    assert (metrics["ended_at_cap"]["value"], entry(published[2], "base")["metrics"]["ended_at_cap"]["value"]) == (
        pytest.approx(3 / 15), pytest.approx(12 / 15))


def test_samples_keep_their_flags_as_true_or_false(published):
    samples = entry(published[2], "base")["samples"]
    assert [s["ended_at_cap"] for s in samples[:5]] == [True, True, True, True, False]
    assert [s["ends_sentence"] for s in samples[:5]] == [False, False, False, False, True]


def test_a_task_whose_finish_reasons_are_unknown_has_no_ended_at_cap_column(published):
    longen = entry(published[2], "base", "longen_mini")
    assert "ended_at_cap" not in longen["metrics"] and "repeated_10gram_share" in longen["metrics"]
    assert {s["ended_at_cap"] for s in longen["samples"]} == {None}


def test_a_flag_that_is_not_true_false_or_null_names_the_file_and_sample(published, tmp_path):
    run = published[0][0]
    scores = json.loads((run / "scores.json").read_text(encoding="utf-8"))
    scores["tasks"][LBW]["samples"][2]["ended_at_cap"] = "yes"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
    (bad / "run.json").write_text((run / "run.json").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(LeaderboardError, match=r"scores.json: tasks\['longbench_write_en_mini'\]\.samples\[2\]"
                                               r"\.ended_at_cap must be true or false or null, got 'yes'"):
        build_leaderboard([bad], base=None)


def test_markdown_has_a_column_per_degeneration_metric_with_shares_as_percentages(published):
    text = render_markdown(published[2])
    assert ("| mean words | effective words | repeated 10-grams | ended at cap | ends a sentence | quality (judge) "
            in text)
    row = next(line for line in text.splitlines() if line.startswith("| self_lengthen/iter_3 |"))
    assert re.search(r"\| 20% \[0%, 40%\] ▼ p=0\.00\d+ \|", row)
    assert "| longbench_write_en_mini | self_lengthen/iter_2 | self_lengthen/iter_3 | ended at cap | -20 pts |" in text


def test_a_significant_drop_in_repetition_is_coloured_as_better_and_words_stay_neutral(published):
    html = render_html(published[2])
    row = next(r for r in re.findall(r"<tr[^>]*>.*?</tr>", html) if '<td class="text">self_lengthen/iter_3' in r)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    header = re.findall(r"<th[^>]*>([^<]*)</th>", html.split("<thead>")[1].split("</thead>")[0])
    by_column = dict(zip(header, cells))
    assert '<span class="sig up" title="▼ p=' in by_column["repeated 10-grams"]
    assert '<span class="sig up" title="▲ p=' in by_column["ends a sentence"]
    assert '<span class="sig plain" title="▲ p=' in by_column["mean words"]


def test_the_judge_reasons_are_given_once_per_task_in_every_view(published):
    _, paths, board = published
    reason = "judge not validated (no sanity check)"
    for text in (render_markdown(board), render_html(board), leaderboard_log(paths, 80), leaderboard_log(paths, 400)):
        assert text.count(reason) == 1


def leaderboard_log(paths: dict, columns: int) -> str:
    """What `selflengthen leaderboard` prints into a log (stdout a pipe, not a terminal) at this COLUMNS."""
    runs = json.loads(paths["json"].read_text(encoding="utf-8"))["rows"]
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb"}
    done = subprocess.run([sys.executable, "-m", "harness.cli", "leaderboard", *[r["run_dir"] for r in runs],
                           "--out", str(paths["json"].parent.parent / f"log{columns}")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_leaderboard_in_an_80_column_log_has_every_cell_whole(published):
    log = leaderboard_log(published[1], 80)
    lines = log.splitlines()
    assert lines[-1].startswith("wrote ")  # the files written, a path as long as it is
    assert "…" not in log and max(len(line) for line in lines[:-1]) <= 80
    for name in RUN_NAMES.values():  # the longest is self_lengthen/iter_3, 20 characters
        assert any(line.startswith(name + " ") for line in lines), name
    header = next(line for line in lines if line.startswith("model "))
    assert header.split() == ["model", "S_l", "words", "rep.", "cap", "sent.", "qual.", "q@len"]
    row = next(line for line in lines if line.startswith("self_lengthen/iter_3 "))
    cells = r"self_lengthen/iter_3 +[\d.]+ ▲ +[\d,]+ ▲ +19% ▼ +20% ▼ +80% ▲ +[\d.]+ ⚠1 +[\d.]+ ▼ ⚠1"
    assert re.fullmatch(cells, row.rstrip())  # quality: ⚠ and the number of its reason under the table
    assert "leaderboard.md and leaderboard.html" in " ".join(log.split())


def test_an_80_column_log_breaks_a_long_model_name_after_a_slash_not_mid_word(published):
    board = published[2]
    board = board | {"rows": [row | {"model": row["model"] + "/generator"} if row["arm"] == "self_lengthen" else row
                              for row in board["rows"]]}  # as `run` names the iterations' Generators
    console = Console(record=True, width=80, file=io.StringIO())
    print_leaderboard(board, console)
    first_cells = [line.split(" ")[0] for line in console.export_text().splitlines()]
    for k in (1, 2, 3):
        assert first_cells.count(f"self_lengthen/iter_{k}/") == 1
    assert first_cells.count("generator") == 3
    assert all(cell.endswith(("/", "/generator")) for cell in first_cells if cell.startswith("self_lengthen/"))
    assert not any(cell != "generator" and "generator".endswith(cell) for cell in first_cells if cell)


def test_a_wide_terminal_shows_every_metric_with_its_interval(published):
    log = leaderboard_log(published[1], 400)
    assert "repeated 10-grams" in log and "effective words" in log and "about" in log
    assert re.search(r"19% \[\d+%, \d+%\] ▼ p=0\.0\d+", log)
