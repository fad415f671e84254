"""The append-only journal survives kill -9; whole files are written atomically; JSONL reads back with errors
that name the file and line."""

import json
import re

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


class BadInput(ValueError):
    """A caller's own error, which its command reports in one line."""


@pytest.mark.parametrize(("line", "problem"), [("{oops", "malformed JSON"), ("[1, 2]", "expected a JSON object")])
def test_read_jsonl_raises_the_callers_error_naming_the_file_and_line(tmp_path, line, problem):
    path = tmp_path / "rows.jsonl"
    path.write_text(f'{{"x": 1}}\n\n{line}\n', encoding="utf-8")
    with pytest.raises(BadInput, match=f"^{re.escape(str(path))} line 3: {problem}"):
        read_jsonl(path, BadInput)


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


FINISH_REASONS = "requests_cache_finish_reasons.jsonl"  # the eval's journal (harness/scoring/lm_eval_driver.py)


def test_a_malformed_line_in_the_middle_keeps_the_records_after_it_and_is_named(tmp_path, caplog):
    path = tmp_path / FINISH_REASONS
    good = [json.dumps({"key": k, "finish_reason": "stop"}) for k in "abc"]
    path.write_text(f"{good[0]}\n{{\"key\": \"x\", \"fin\n{good[1]}\n{good[2]}\n", encoding="utf-8")
    journal = Journal(path)
    assert list(journal.records) == ["a", "b", "c"]
    assert f"{FINISH_REASONS} line 2: skipped" in caplog.text
    journal.append({"key": "d", "finish_reason": "length"})
    journal.close()
    assert list(Journal(path).records) == ["a", "b", "c", "d"]  # nothing after the bad line was cut off


@pytest.mark.parametrize("line", ['["key", "x"]', "42", '{"finish_reason": "stop"}', '{"key": 7}'])
def test_a_line_that_is_json_but_no_record_is_skipped_and_named_not_a_crash(tmp_path, caplog, line):
    path = tmp_path / FINISH_REASONS
    path.write_text(f'{{"key": "a"}}\n{line}\n{{"key": "b"}}\n', encoding="utf-8")
    assert list(Journal(path).records) == ["a", "b"]
    assert f"{FINISH_REASONS} line 2: skipped, not a JSON object with a string 'key'" in caplog.text


def test_a_line_that_is_not_utf8_is_skipped_and_named(tmp_path, caplog):
    path = tmp_path / FINISH_REASONS
    path.write_bytes(b'{"key": "a"}\n\xff\xfe\n{"key": "b"}\n')
    assert list(Journal(path).records) == ["a", "b"]
    assert "line 2: skipped" in caplog.text
