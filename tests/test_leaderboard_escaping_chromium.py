"""Hostile text in every string of leaderboard.html, checked in the DOM headless Chromium builds.

The page of a leaderboard with a payload in every text field must have exactly the elements and attribute
names of the same leaderboard with plain words there, no event-handler attribute, no javascript: URL, and
only the page's own script; the payload that would mark the body if it ran must not have run.
"""

from __future__ import annotations

import pytest

from leaderboard.render_html import render_html
from tests.chromium import NEEDS_CHROMIUM, chromium
from tests.html_structure import Structure
from tests.leaderboard_payloads import PAYLOADS, leaderboard_with, trust_strings

pytestmark = NEEDS_CHROMIUM


@pytest.fixture(scope="module")
def boards(tmp_path_factory) -> dict:
    """The hostile page as published, the hostile board with leaderboard.json payloads, and the plain board."""
    root = tmp_path_factory.mktemp("escaping")
    published, hostile = leaderboard_with(PAYLOADS, root / "hostile")
    _, plain = leaderboard_with(None, root / "plain")
    return {"root": root, "published": published, "hostile": hostile, "plain": plain}


@pytest.fixture(scope="module")
def doms(boards) -> dict[str, Structure]:
    """Chromium's DOM of: the hostile page as published, the hostile board with leaderboard.json payloads, the plain one."""
    root, hostile, plain = boards["root"], boards["hostile"], boards["plain"]
    pages = {"published": boards["published"]}
    for name, board in (("hostile", hostile), ("plain", plain)):
        pages[name] = root / f"{name}.html"
        pages[name].write_text(render_html(board), encoding="utf-8")
    return {name: Structure(chromium(page, root / f"profile-{name}", "--dump-dom")) for name, page in pages.items()}


@pytest.mark.parametrize("page", ["published", "hostile"])
def test_hostile_text_adds_no_event_handler_or_javascript_url(doms, page):
    attributes = doms[page].attributes
    assert [name for name, _ in attributes if name.startswith("on")] == []
    assert [value for _, value in attributes if "javascript:" in (value or "").replace(" ", "").lower()] == []


@pytest.mark.parametrize("page", ["published", "hostile"])
def test_hostile_text_adds_no_script_and_none_runs(doms, page):
    assert sum(n for (tag, _), n in doms[page].elements.items() if tag == "script") == 1
    assert ("data-sortable", "ready") in doms[page].attributes
    assert not any(name == "data-pwned" for name, _ in doms[page].attributes)


def test_hostile_text_adds_no_element_or_attribute_the_plain_page_lacks(doms):
    assert doms["hostile"].elements == doms["plain"].elements


@pytest.mark.parametrize("page", ["published", "hostile"])
def test_every_payload_is_shown_as_text(doms, page):
    text = "".join(doms[page].text)
    assert all(payload in text for payload in PAYLOADS)


def test_every_judge_trust_string_holds_a_payload_and_is_shown_as_text(boards, doms):
    strings = trust_strings(boards["hostile"])
    assert len(strings) == 13 and all(any(payload in text for payload in PAYLOADS) for text in strings)
    text = "".join(doms["hostile"].text)
    assert all(string in text for string in strings)
