"""Where benchmark rows come from: the data_dir argument, the SELFLENGTHEN_DATA_DIR setting, or the Hub."""

from __future__ import annotations

import pytest

from tasks.data import DATA_DIR_ENV, BenchmarkDataError, load_benchmark


@pytest.mark.parametrize(("name", "rows"), [
    ("longen", 240), ("longbench_write", 120), ("longbench_write_en", 60), ("longwrite_ruler", 48),
])
def test_real_benchmarks_load_from_the_data_dir_argument(data_dir, name, rows):
    loaded = load_benchmark(name, data_dir)
    assert len(loaded) == rows and all(isinstance(r, dict) for r in loaded)


def test_the_setting_is_used_when_no_argument_is_given(data_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    assert load_benchmark("longwrite_ruler") == load_benchmark("longwrite_ruler", data_dir)


def test_the_argument_wins_over_the_setting(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert len(load_benchmark("longen", data_dir)) == 240


def test_missing_file_is_a_one_line_error_naming_the_path(tmp_path):
    with pytest.raises(BenchmarkDataError, match=r"^benchmark file .*longen.jsonl does not exist \(check SELFLENGTHEN_DATA_DIR\)$"):
        load_benchmark("longen", tmp_path)


def test_mini_of_a_missing_file_reports_the_real_file(tmp_path):
    with pytest.raises(BenchmarkDataError, match=r"longbench_write_en.jsonl does not exist"):
        load_benchmark("longbench_write_en_mini", tmp_path)


def test_malformed_line_names_its_line_number(tmp_path):
    (tmp_path / "longen.jsonl").write_text('{"query": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"longen.jsonl line 2: malformed JSON"):
        load_benchmark("longen", tmp_path)


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(BenchmarkDataError, match=r"^unknown benchmark 'ifeval'; known: longen, longbench_write"):
        load_benchmark("ifeval")


def test_benchmark_not_on_the_hub_asks_for_the_setting(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(BenchmarkDataError, match=r"^longwrite_ruler is not on the Hugging Face Hub; set SELFLENGTHEN_DATA_DIR"):
        load_benchmark("longwrite_ruler")


def test_a_relative_data_dir_setting_means_the_folder_the_command_started_in(tmp_path, monkeypatch):
    from tasks.data import DATA_DIR_ENV, pin_data_dir_setting

    monkeypatch.chdir(tmp_path)
    environ = {DATA_DIR_ENV: "../shared/data"}
    pin_data_dir_setting(environ)
    assert environ[DATA_DIR_ENV] == str(tmp_path.parent / "shared" / "data")
    absolute = {DATA_DIR_ENV: "/elsewhere/data"}
    pin_data_dir_setting(absolute)
    assert absolute[DATA_DIR_ENV] == "/elsewhere/data"


def test_the_test_session_hands_child_processes_an_absolute_data_dir():
    import os

    from tasks.data import DATA_DIR_ENV

    value = os.environ.get(DATA_DIR_ENV)
    if value is None:
        pytest.skip(f"{DATA_DIR_ENV} is not set")
    assert os.path.isabs(value)
