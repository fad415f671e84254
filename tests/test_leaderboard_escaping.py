"""Hostile text in every string a view shows stays text: Markdown as a Markdown renderer reads it.

The leaderboard with a payload in every string comes from ``leaderboard_with`` in tests/leaderboard_payloads.py.
The HTML side is checked in headless Chromium by tests/test_leaderboard_escaping_chromium.py.
"""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from leaderboard.render_markdown import render_markdown
from tests.html_structure import Structure
from tests.leaderboard_payloads import MARKDOWN_PAYLOADS, PAYLOADS, leaderboard_with, trust_strings


def markdown_html(board: dict) -> Structure:
    """leaderboard.md as a CommonMark renderer with GitHub's tables and strike-through turns it into HTML."""
    return Structure(MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(render_markdown(board)))


MARKDOWN_TAGS = {"h1", "h2", "p", "ul", "ol", "li", "strong", "table", "thead", "tbody", "tr", "th", "td"}


@pytest.mark.parametrize("payloads", [PAYLOADS, MARKDOWN_PAYLOADS], ids=["html", "markdown"])
def test_markdown_turns_no_user_text_into_markup(tmp_path, payloads):
    _, board = leaderboard_with(payloads, tmp_path)
    rendered = markdown_html(board)
    assert {tag for tag, _ in rendered.elements} <= MARKDOWN_TAGS
    assert rendered.attributes == []


@pytest.mark.parametrize("payloads", [PAYLOADS, MARKDOWN_PAYLOADS], ids=["html", "markdown"])
def test_markdown_shows_user_text_literally(tmp_path, payloads):
    _, board = leaderboard_with(payloads, tmp_path)
    text = " ".join(markdown_html(board).text)
    assert all(payload in text for payload in payloads)


@pytest.mark.parametrize("payloads", [PAYLOADS, MARKDOWN_PAYLOADS], ids=["html", "markdown"])
def test_markdown_shows_judge_trust_reasons_and_degradation_names_literally(tmp_path, payloads):
    _, board = leaderboard_with(payloads, tmp_path)
    strings = trust_strings(board)
    assert len(strings) == 13 and all(any(payload in text for payload in payloads) for text in strings)
    text = " ".join(markdown_html(board).text)
    assert all(string in text for string in strings)
