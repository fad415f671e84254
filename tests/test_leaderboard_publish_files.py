"""Publishing writes leaderboard.{json,md,html} as one set, readable by others (the umask decides, not mkstemp)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from infra.journal import write_text_atomically
from leaderboard import fileset, publish
from tests.leaderboard_runs import MODELS, make_run_dir

NAMES = ["leaderboard.html", "leaderboard.json", "leaderboard.md"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [make_run_dir(root, *MODELS[i][:6], seed=i) for i in range(3)]


@pytest.fixture
def previous(tmp_path, runs) -> dict[str, bytes]:
    """A folder holding an earlier leaderboard (of two runs); returns its files' bytes by name."""
    publish.publish(runs[:2], None, tmp_path / "out")
    return {path.name: path.read_bytes() for path in sorted((tmp_path / "out").iterdir())}


def _contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture
def umask():
    """Run the test under a given umask (set by calling the fixture), restoring the old one afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _fail(*_args, **_kwargs):
    raise RuntimeError("renderer broke")


@pytest.mark.parametrize("renderer", ["render_markdown", "render_html"])
def test_a_render_failure_leaves_the_previous_files_untouched(tmp_path, runs, previous, monkeypatch, renderer):
    monkeypatch.setattr(publish, renderer, _fail)
    with pytest.raises(RuntimeError, match="renderer broke"):
        publish.publish(runs, None, tmp_path / "out")
    assert list(previous) == NAMES and _contents(tmp_path / "out") == previous


def test_a_failure_while_swapping_files_restores_the_previous_set(tmp_path, runs, previous, monkeypatch):
    real_replace, swapped = os.replace, []

    def replace_twice_then_fail(source, target):
        """The third new file fails to move into place; the restoring moves of the old files succeed."""
        if Path(source).name.endswith(".new"):
            if len(swapped) == 2:
                raise OSError(28, "No space left on device")
            swapped.append(target)
        real_replace(source, target)

    monkeypatch.setattr(fileset.os, "replace", replace_twice_then_fail)
    with pytest.raises(OSError, match="No space left"):
        publish.publish(runs, None, tmp_path / "out")
    assert len(swapped) == 2 and _contents(tmp_path / "out") == previous


def test_a_failed_first_publish_leaves_no_leaderboard_file(tmp_path, runs, monkeypatch):
    monkeypatch.setattr(publish, "render_html", _fail)
    with pytest.raises(RuntimeError):
        publish.publish(runs, None, tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_successful_publish_replaces_all_three_and_leaves_nothing_else(tmp_path, runs, previous):
    publish.publish(runs, None, tmp_path / "out")
    now = _contents(tmp_path / "out")
    assert list(now) == NAMES and all(now[name] != previous[name] for name in NAMES)


def test_the_command_reports_a_render_failure_in_one_line_with_exit_2(tmp_path, runs, capsys, monkeypatch):
    monkeypatch.setattr(publish, "render_html", _fail)
    assert publish.main([*map(str, runs), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == "error: RuntimeError: renderer broke (--debug shows the traceback)\n"


def test_the_command_shows_the_traceback_with_debug(tmp_path, runs, capsys, monkeypatch):
    monkeypatch.setattr(publish, "render_html", _fail)
    assert publish.main([*map(str, runs), "--out", str(tmp_path / "out"), "--debug"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("Traceback (most recent call last):") and "in _fail" in error


def test_leaderboard_files_are_readable_by_group_and_others_under_umask_022(tmp_path, runs, umask):
    publish.publish(runs, None, tmp_path / "shared" / "out")
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "shared" / "out").iterdir()}
    assert modes == dict.fromkeys(NAMES, 0o644)
    assert stat.S_IMODE((tmp_path / "shared" / "out").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o755


def test_atomic_writes_follow_a_stricter_umask(tmp_path, umask):
    umask(0o027)
    write_text_atomically(tmp_path / "private" / "notes.txt", "x")
    assert stat.S_IMODE((tmp_path / "private" / "notes.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o750
