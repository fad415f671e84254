"""The Markdown, terminal and HTML views: what a reader must find in each, read from leaderboard.json."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from leaderboard.board import load_leaderboard
from leaderboard.build import build_leaderboard
from leaderboard.publish import main, publish
from leaderboard.render_html import render_html
from leaderboard.render_markdown import render_markdown
from leaderboard.render_terminal import print_leaderboard
from tests.leaderboard_runs import MODELS, make_experiment, make_run_dir

HOSTILE_ANSWER = ('</textarea><script>document.title="pwned";'
                  'document.body.insertAdjacentHTML("beforeend","<p id=injected>x</p>")</script><b>bold</b>')


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("board")
    paths = publish(make_experiment(root / "runs", answer=HOSTILE_ANSWER), None, root / "out")
    return paths, load_leaderboard(paths["json"])


def test_publish_writes_the_json_and_both_file_views(published):
    paths, board = published
    assert sorted(p.name for p in paths["json"].parent.iterdir()) == [
        "leaderboard.html", "leaderboard.json", "leaderboard.md"]
    assert paths["markdown"].read_text(encoding="utf-8") == render_markdown(board)


def test_markdown_has_one_table_per_task_with_intervals_and_base_tests(published):
    text = render_markdown(published[1])
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        "## longbench_write_en_mini", "## longen_mini", "## longwrite_ruler_mini", "## Iteration over iteration",
        "## Training data per arm", "## Method"]
    header = "| model | arm | iter | n | S_l | mean words | quality (judge) | quality @ common length | judge verdict |"
    assert header in text
    assert "| model | judge failures | judge sanity | judge agreement |" in text
    row = next(line for line in text.splitlines() if line.startswith("| sl-iter3 | self_lengthen | 3 | 15 |"))
    assert re.search(r"\| \d+\.\d \[\d+\.\d, \d+\.\d\] ▲ p=0\.000\d+ \|", row)
    assert "| **smollm2-135m** (base) | base | – | 16 |" in text
    assert "| model | arm | iter | training samples | mean answer words | training tokens |" in text
    assert "| sl-iter3 | self_lengthen | 3 | 480 | 1,540 | 1,050,000 |" in text
    assert "Wilcoxon" in text and "log(words+1)" in text


def test_markdown_lists_each_iteration_against_the_one_before(published):
    text = render_markdown(published[1])
    rows = [line for line in text.splitlines() if line.startswith("| longbench_write_en_mini | sl-iter2 | sl-iter3 |")]
    assert [line.split(" | ")[3] for line in rows] == ["S_l", "mean words", "quality (judge)", "quality @ common length"]
    assert re.fullmatch(r"\| longbench_write_en_mini \| sl-iter2 \| sl-iter3 \| mean words \| ▲ \+[\d,.]+ \| [0-9.e-]+ \| 15 \|",
                        rows[1])
    assert not any("| smollm2-135m | sl-iter1 |" in line for line in text.splitlines())


def test_markdown_escapes_pipes_in_model_names(published):
    board = published[1] | {"rows": [published[1]["rows"][0] | {"model": "a|b"}]}
    assert "a\\|b" in render_markdown(board)


def test_terminal_view_prints_a_table_per_task(published):
    console = Console(record=True, width=260)
    print_leaderboard(published[1], console)
    text = console.export_text()
    for task in published[1]["tasks"]:
        assert task in text
    assert "smollm2-135m (base)" in text and "▲ p=" in text and "quality @ common length" in text


def test_html_is_self_contained(published):
    html = published[0]["html"].read_text(encoding="utf-8")
    assert not re.search(r"(src|href)\s*=", html)
    assert "http://" not in html and "https://" not in html and "@import" not in html
    assert html.count("<script>") == 1


def test_html_escapes_model_text(published):
    html = render_html(published[1])
    assert HOSTILE_ANSWER not in html
    assert "&lt;/textarea&gt;&lt;script&gt;document.title=&quot;pwned&quot;" in html
    assert "<b>bold</b>" not in html


def test_html_has_sortable_tables_three_figures_and_the_method(published):
    html = render_html(published[1])
    assert html.count('<table class="sortable">') == 4
    assert html.count('class="chart length-following"') == 1
    assert html.count('class="chart iterations"') == 6
    assert html.count('class="chart quality-length"') == 1
    assert "length-controlled" in html and "median log length" in html


def test_every_view_renders_a_single_unjudged_run_without_iterations(tmp_path):
    run = make_run_dir(tmp_path, *MODELS[0][:6], seed=0)
    (run / "judgements.json").unlink()
    board = build_leaderboard([run], base=None)
    markdown = render_markdown(board)
    assert "| judge failures |" not in markdown and "⚠ unreliable" not in markdown and "Training data" not in markdown
    html = render_html(board)
    assert "No Self-Lengthen iterations in this leaderboard." in html and "No judged task." in html
    assert html.count('class="chart length-following"') == 1
    console = Console(record=True, width=200)
    print_leaderboard(board, console)
    assert "smollm2-135m (base)" in console.export_text()


def test_the_leaderboard_command_writes_the_files_and_fails_cleanly_on_a_missing_run(tmp_path, capsys):
    runs = make_experiment(tmp_path / "runs")[:2]
    assert main([str(p) for p in runs] + ["--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "leaderboard.html").is_file()
    assert "longen_mini" in capsys.readouterr().out
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "out2")]) == 2
    assert capsys.readouterr().err.strip().endswith("missing: run directory not found")
    assert not (tmp_path / "out2").exists()
