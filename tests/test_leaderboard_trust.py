"""How far to trust judge quality: leaderboard.json's quality_trust, recomputed from judgements.json's numbers.

Four hand-made run directories cover the rule of leaderboard/trust.py: a validated judge with few failures
(reliable), a sanity degradation not significantly above chance (while the file's flags claim otherwise),
failures above 20% of the samples (ditto), and judgements written before ``trust`` existed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from leaderboard.build import build_leaderboard
from leaderboard.render_html import render_html
from leaderboard.render_markdown import render_markdown
from leaderboard.render_terminal import print_leaderboard
from leaderboard.trust import NOT_VALIDATED
from tests.leaderboard_runs import MODELS, make_run_dir

LBW = "longbench_write_en_mini"
PASSING = {"truncated": {"rate": 0.94, "ci": [0.75, 0.99], "p_value": 0.0002, "above_chance": True, "n": 15},
           "shuffled": {"rate": 0.8, "ci": [0.55, 0.93], "p_value": 0.018, "above_chance": True, "n": 15},
           "swapped": {"rate": 1.0, "ci": [0.8, 1.0], "p_value": 3.1e-05, "above_chance": True, "n": 15}}
AGREEMENT = {"repeats_n": 8, "krippendorff_alpha": 0.81, "spearman": 0.77, "mean_std": 4.1}
# shuffled scored below the original in 5 of 9 pairs: p = 0.31, yet the file calls it above chance and reliable
NOT_ABOVE_CHANCE = PASSING | {"shuffled": {"rate": 0.56, "ci": [0.27, 0.81], "p_value": 0.31, "above_chance": True,
                                           "n": 9}}
SANITY_REASON = "sanity shuffled: original preferred at rate 0.56 over 9 pairs (p=0.31), not significantly above chance"
FAILURES_REASON = "judge failed on 4 of 15 samples (27%), above 20%"


def with_trust(run_dir: Path, trust: dict | None) -> Path:
    """Add a judges-style ``trust`` to the LongBench-Write judgements of ``run_dir`` (None: leave it out)."""
    path = run_dir / "judgements.json"
    judgements = json.loads(path.read_text(encoding="utf-8"))
    if trust is not None:
        judgements["tasks"][LBW]["trust"] = trust
    path.write_text(json.dumps(judgements), encoding="utf-8")
    return run_dir


def trust(sanity: dict | None, agreement: dict | None = None, reliable: bool = True, reasons=()) -> dict:
    return {"failures": {"count": 1, "rate": 1 / 15}, "sanity": sanity, "agreement": agreement,
            "reliable": reliable, "unreliable_reasons": list(reasons)}


def experiment(root: Path) -> list[Path]:
    """reliable (smollm2-135m), unreliable by sanity (sl-iter1), by failures (sl-iter2), no trust (sl-iter3)."""
    cases = [(trust(PASSING, AGREEMENT), (3,)), (trust(NOT_ABOVE_CHANCE), (3,)), (trust(PASSING), (1, 3, 5, 7)),
             (None, (3,))]
    return [with_trust(make_run_dir(root, *MODELS[i][:6], seed=i, judge_failure_ids=failures), judge_trust)
            for i, (judge_trust, failures) in enumerate(cases)]


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> dict:
    return build_leaderboard(experiment(tmp_path_factory.mktemp("runs")), base=None)


def quality_trust(board: dict, model: str) -> dict:
    return next(r for r in board["rows"] if r["id"] == model)["tasks"][LBW]["quality_trust"]


def test_a_validated_judge_with_few_failures_is_reliable(board):
    assert quality_trust(board, "smollm2-135m") == {
        "reliable": True, "reasons": [], "failures": 1, "n": 15, "failures_rate": 1 / 15,
        "sanity": PASSING, "agreement": AGREEMENT}


def test_a_sanity_rate_not_significantly_above_chance_is_unreliable_whatever_the_file_flags(board):
    found = quality_trust(board, "sl-iter1")
    assert (found["reliable"], found["reasons"]) == (False, [SANITY_REASON])
    assert found["sanity"]["shuffled"]["above_chance"] is False and found["sanity"]["truncated"]["above_chance"]


def test_failures_above_20_percent_of_the_samples_are_unreliable_whatever_the_file_flags(board):
    found = quality_trust(board, "sl-iter2")
    assert (found["reliable"], found["reasons"], found["failures"]) == (False, [FAILURES_REASON], 4)


def test_judgements_without_trust_are_a_judge_not_validated(board):
    assert quality_trust(board, "sl-iter3") == {
        "reliable": False, "reasons": [NOT_VALIDATED], "failures": 1, "n": 15, "failures_rate": 1 / 15,
        "sanity": None, "agreement": None}


def test_an_unjudged_task_has_no_quality_trust(board):
    assert all(row["tasks"]["longen_mini"]["quality_trust"] is None for row in board["rows"])


def test_exactly_20_percent_failures_is_still_reliable(tmp_path):
    run = with_trust(make_run_dir(tmp_path, *MODELS[0][:6], seed=0, judge_failure_ids=(1, 2, 3)), trust(PASSING))
    assert build_leaderboard([run], base=None)["rows"][0]["tasks"][LBW]["quality_trust"]["reliable"] is True


def test_a_null_sanity_is_not_validated_even_when_the_file_says_reliable(tmp_path):
    run = with_trust(make_run_dir(tmp_path, *MODELS[0][:6], seed=0), trust(None, AGREEMENT))
    assert build_leaderboard([run], base=None)["rows"][0]["tasks"][LBW]["quality_trust"]["reasons"] == [NOT_VALIDATED]


def test_a_file_marked_unreliable_for_a_cause_the_rule_lacks_keeps_its_reasons(tmp_path):
    run = with_trust(make_run_dir(tmp_path, *MODELS[0][:6], seed=0),
                     trust(PASSING, reliable=False, reasons=["judge saw the reference answers"]))
    found = build_leaderboard([run], base=None)["rows"][0]["tasks"][LBW]["quality_trust"]
    assert (found["reliable"], found["reasons"]) == (False, ["judge saw the reference answers"])


def markdown_section(board: dict) -> str:
    return render_markdown(board).split(f"## {LBW}")[1].split("## ")[0]


def markdown_row(board: dict, model: str, table: int = 0) -> str:
    """The model's line in the task's table (0) or in the judge table under it (1)."""
    lines = markdown_section(board).split("Judge of the quality columns:")[table].splitlines()
    return next(line for line in lines if line.startswith(f"| {model} ") or f"**{model}**" in line)


# The reasons in the order the rows first give them, numbered once under the table.
NOTES = {"sl-iter1": (1, SANITY_REASON), "sl-iter2": (2, FAILURES_REASON), "sl-iter3": (3, NOT_VALIDATED)}


def test_markdown_marks_unreliable_quality_cells_and_points_to_each_reason_listed_once(board):
    section = markdown_section(board)
    for model, (number, reason) in NOTES.items():
        row = markdown_row(board, model)
        assert row.count("⚠ unreliable") == 2  # quality and quality @ common length
        assert row.endswith(f"| unreliable ({number}) |")
        assert section.count(reason) == 1 and f"\n{number}. {reason}\n" in section


def test_markdown_shows_failures_sanity_and_agreement_of_a_reliable_judge_unmarked(board):
    row = markdown_row(board, "smollm2-135m")
    assert "⚠ unreliable" not in row and row.endswith("| reliable |")
    assert markdown_row(board, "smollm2-135m", table=1).endswith(
        "| 1 of 15 (7%) | truncated 0.94 (p=0.0002), shuffled 0.80 (p=0.018), swapped 1.00 (p=3.1e-05) "
        "| α 0.81, ρ 0.77, sd 4.10 (n=8) |")


def test_markdown_marks_a_failing_degradation_and_unmeasured_agreement(board):
    row = markdown_row(board, "sl-iter1", table=1)
    assert "shuffled 0.56 (p=0.31) ✗" in row and row.endswith("| not measured |")
    assert "| 4 of 15 (27%) |" in markdown_row(board, "sl-iter2", table=1)


def test_every_view_explains_the_marking(board):
    console = Console(record=True, width=400)
    print_leaderboard(board, console)
    for text in (render_markdown(board), console.export_text(), render_html(board)):
        text = " ".join(text.split())  # the terminal wraps the legend at its width
        assert "⚠ unreliable = do not trust this judge quality" in text
        assert "regression check does not gate on it" in text


def terminal_text(board: dict, width: int = 700) -> str:
    console = Console(record=True, width=width)
    print_leaderboard(board, console)
    return console.export_text()


def terminal_line(board: dict, model: str) -> str:
    return next(line for line in terminal_text(board).splitlines() if line.startswith(f"│ {model} "))


def test_the_terminal_marks_unreliable_quality_cells_and_lists_each_reason_once(board):
    line = terminal_line(board, "sl-iter1")
    assert line.count("⚠ unreliable") == 2 and "unreliable (1)" in line
    assert "⚠ unreliable" not in terminal_line(board, "smollm2-135m")
    text = terminal_text(board)
    for number, reason in NOTES.values():
        assert text.count(reason) == 1 and f"({number}) {reason}" in text


def test_the_compact_terminal_table_marks_unreliable_quality_and_still_lists_the_reasons(board):
    text = terminal_text(board, width=80)
    line = next(line.rstrip() for line in text.splitlines() if line.startswith("sl-iter2 "))
    assert line.count("⚠2") == 2 and line.endswith("⚠2")  # quality and quality at the common length: reason (2)
    assert f"(2) {FAILURES_REASON}" in text


def html_rows(board: dict, table: int = 0) -> list[str]:
    """The rows of the task's table (0) or of the judge table under it (1)."""
    body = render_html(board).split("<tbody>")[1 + table].split("</tbody>")[0]
    return re.findall(r"<tr[^>]*>.*?</tr>", body)


def html_row(board: dict, model: str, table: int = 0) -> str:
    return next(row for row in html_rows(board, table) if f'<td class="text">{model}' in row)


def test_the_html_marks_unreliable_quality_cells_and_points_to_the_reason_listed_once(board):
    row = html_row(board, "sl-iter2")
    assert row.count('<span class="unreliable" title="see the judge verdict">⚠</span>') == 2
    assert '<td class="text"><span class="unreliable">unreliable (2)</span></td>' in row
    html = render_html(board)
    assert html.count(FAILURES_REASON) == 1 and f"<li>{FAILURES_REASON}</li>" in html
    assert '<td data-v="0.26666666666666666">4 of 15 (27%)</td>' in html_row(board, "sl-iter2", table=1)


def test_the_html_shows_a_failing_degradation_in_red_and_a_reliable_judge_unmarked(board):
    assert '<span class="down">shuffled 0.56 (p=0.31) ✗</span>' in html_row(board, "sl-iter1", table=1)
    row = html_row(board, "smollm2-135m")
    assert "⚠" not in row and '<td class="text">reliable</td>' in row


def test_an_older_leaderboard_without_quality_trust_shows_its_quality_as_not_validated(board):
    older = json.loads(json.dumps(board))
    for row in older["rows"]:
        del row["tasks"][LBW]["quality_trust"]
    assert markdown_row(older, "smollm2-135m").endswith("| unreliable (1) |")
    assert f"1. {NOT_VALIDATED}" in markdown_section(older)


def test_rich_markup_in_a_degradation_name_and_a_reason_prints_literally_in_the_terminal(tmp_path):
    failing = {"[red]x[/red]": {"rate": 0.5, "ci": [0.2, 0.8], "p_value": 0.6, "above_chance": False, "n": 6}}
    runs = [with_trust(make_run_dir(tmp_path, *MODELS[0][:6], seed=0), trust(failing)),
            with_trust(make_run_dir(tmp_path, *MODELS[1][:6], seed=1),
                       trust(PASSING, reliable=False, reasons=["[/bold] judge [link=x]y[/link]"]))]
    board = build_leaderboard(runs, base=None)
    for width in (80, 900):
        text = terminal_text(board, width)
        assert "(1) sanity [red]x[/red]: original preferred at rate 0.50" in text
        assert "(2) [/bold] judge [link=x]y[/link]" in text


def test_the_quality_figure_marks_models_whose_judge_is_unreliable_in_its_legend(board):
    figure = render_html(board).split('class="chart quality-length"')[1].split("</svg>")[0]
    legend = re.findall(r'<text class="legend"[^>]*>([^<]*)</text>', figure)
    assert legend == ["smollm2-135m", "sl-iter1 ⚠ unreliable", "sl-iter2 ⚠ unreliable", "sl-iter3 ⚠ unreliable"]


def test_a_hand_written_quality_trust_with_only_the_required_fields_renders_in_every_view(board):
    sparse = json.loads(json.dumps(board))
    sparse["rows"][0]["tasks"][LBW]["quality_trust"] = {"reliable": False, "reasons": ["judge retired"],
                                                         "sanity": {"truncated": {}}}
    assert markdown_row(sparse, "smollm2-135m").endswith("| unreliable (1) |")
    assert markdown_row(sparse, "smollm2-135m", table=1).endswith("| – | truncated – (p=–) ✗ | not measured |")
    assert "<li>judge retired</li>" in render_html(sparse)
    assert "(1) judge retired" in terminal_text(sparse)
