"""leaderboard.html in headless Chromium: the tables and figures render, JS sorts, injected script never runs."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from leaderboard.publish import publish
from tests.chromium import NEEDS_CHROMIUM, chromium
from tests.leaderboard_degeneration import make_degenerate_experiment
from tests.leaderboard_runs import make_experiment

pytestmark = NEEDS_CHROMIUM
INJECTED = ('</textarea><script>document.title="pwned";'
            'document.body.insertAdjacentHTML("beforeend","<p id=injected>x</p>")</script>')


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("html")
    return publish(make_experiment(root / "runs", answer=INJECTED), None, root / "out")["html"]


@pytest.fixture(scope="module")
def dom(page, tmp_path_factory) -> str:
    return chromium(page, tmp_path_factory.mktemp("profile"), "--dump-dom")


def test_injected_script_in_an_answer_never_runs(dom):
    assert "<title>Self-Lengthen leaderboard</title>" in dom
    assert 'id="injected"' not in dom and "pwned</title>" not in dom


def test_the_page_renders_past_a_closing_textarea_in_an_answer(dom):
    assert dom.count("<textarea readonly") == 15
    assert "&lt;/textarea&gt;&lt;script&gt;" in dom
    assert dom.rindex("<h2>Method</h2>") > dom.rindex("</textarea>")


def test_the_page_script_ran_and_the_tables_and_figures_are_in_the_dom(dom):
    assert re.search(r'<body[^>]*data-sortable="ready"', dom)
    assert dom.count('<table class="sortable">') == 4
    figures = {name: dom.count(f'class="chart {name}"') for name in ("length-following", "iterations",
                                                                     "quality-length")}
    assert figures == {"length-following": 1, "iterations": 6, "quality-length": 1}
    length_figure = dom[dom.index('class="chart length-following"'):]
    length_figure = length_figure[:length_figure.index("</svg>")]
    assert length_figure.count('<circle class="pt"') == 5 * (15 + 16 + 12)


def test_clicking_a_header_sorts_the_rows(page, tmp_path):
    clicked = tmp_path / "clicked.html"
    html = page.read_text(encoding="utf-8")
    # Click the S_l header of the first table once: descending, so the longest writer comes first.
    click = ('<script>Array.from(document.querySelectorAll("table")[0].querySelectorAll("th"))'
             '.find(function (th) { return th.textContent === "S_l"; }).click();</script>')
    clicked.write_text(html.replace("</body>", click + "</body>"), encoding="utf-8")
    dom = chromium(clicked, tmp_path / "profile", "--dump-dom")
    first_table = dom[dom.index("<tbody>"):dom.index("</tbody>")]
    models = [m.strip() for m in re.findall(r'<tr[^>]*><td class="text">([^<]+)', first_table)]
    assert models == ["sl-iter3", "sl-iter2", "backtranslation", "sl-iter1", "smollm2-135m"]
    assert 'data-dir="desc"' in dom


def test_a_screenshot_of_the_page_is_taken(page, tmp_path):
    png = tmp_path / "leaderboard.png"
    chromium(page, tmp_path / "profile", f"--screenshot={png}", "--window-size=1400,2000")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1400, 2000)
    assert len(data) > 50_000


def test_at_1400_pixels_the_tables_with_degeneration_columns_fit_and_rows_stay_two_lines_tall(tmp_path):
    page = publish(make_degenerate_experiment(tmp_path / "runs", renamed=True), None, tmp_path / "out")["html"]
    measured = tmp_path / "measured.html"
    measure = ('<script>var rows = Array.from(document.querySelectorAll("table.sortable tbody tr"));'
               'var line = parseFloat(getComputedStyle(document.body).lineHeight);'
               'document.body.dataset.overflow = document.documentElement.scrollWidth - window.innerWidth;'
               'document.body.dataset.lines = Math.max.apply(null, rows.map(function (r) {'
               '  return r.getBoundingClientRect().height / line; })).toFixed(1);</script>')
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", measure + "</body>"), encoding="utf-8")
    dom = chromium(measured, tmp_path / "profile", "--dump-dom", "--window-size=1400,2000")
    assert int(re.search(r'data-overflow="(-?\d+)"', dom).group(1)) <= 0  # no sideways scrolling
    assert float(re.search(r'data-lines="([\d.]+)"', dom).group(1)) <= 2.6  # value and interval, nothing more
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", dom.split("<thead>")[1].split("</thead>")[0])
    assert {"repeated 10-grams", "ended at cap", "ends a sentence", "judge verdict"} <= set(headers)
