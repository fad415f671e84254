"""The append-only journal survives kill -9; whole files are written atomically."""

import json

import pytest

from infra.journal import Journal, read_jsonl, write_jsonl_atomically


def test_journal_reloads_finished_records(tmp_path):
    journal = Journal(tmp_path / "steps.jsonl")
    journal.append({"key": "a", "value": 1})
    journal.append({"key": "b", "value": 2})
    journal.close()
    assert Journal(tmp_path / "steps.jsonl").records == {"a": {"key": "a", "value": 1}, "b": {"key": "b", "value": 2}}


def test_journal_drops_a_torn_last_line_and_keeps_appending_cleanly(tmp_path):
    path = tmp_path / "steps.jsonl"
    path.write_text(json.dumps({"key": "a"}) + "\n" + '{"key": "b", "val')
    journal = Journal(path)
    assert list(journal.records) == ["a"]
    journal.append({"key": "b"})
    journal.close()
    assert [r["key"] for r in read_jsonl(path)] == ["a", "b"]


def test_journal_drops_a_complete_but_unparsable_last_line(tmp_path):
    path = tmp_path / "steps.jsonl"
    path.write_text(json.dumps({"key": "a"}) + "\n" + '{"key": \n')
    assert list(Journal(path).records) == ["a"]


def test_journal_refuses_a_key_twice(tmp_path):
    journal = Journal(tmp_path / "steps.jsonl")
    journal.append({"key": "a"})
    with pytest.raises(ValueError, match="'a' is already finished"):
        journal.append({"key": "a"})


def test_atomic_write_leaves_the_old_file_when_the_rows_fail(tmp_path):
    path = tmp_path / "data.jsonl"
    write_jsonl_atomically(path, [{"x": 1}])

    def broken_rows():
        yield {"x": 2}
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        write_jsonl_atomically(path, broken_rows())
    assert read_jsonl(path) == [{"x": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]
