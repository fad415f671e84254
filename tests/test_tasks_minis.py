"""The *_mini and *_small benchmarks: fixed subsets, demands divided by 10 in text and field alike (minis 100-800, smalls 40-1200)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tasks.data import load_benchmark
from tasks.minis import (
    MINIS,
    SMALL_BOUNDS,
    chinese_numeral,
    count_mentions,
    parse_chinese_numeral,
    rewrite_number,
    scale_longbench_write_row,
    scale_longen_row,
)
from tasks.scoring import longen_demand

# --- numbers in text ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("四千", 4000), ("两千", 2000), ("二千", 2000), ("两千五", 2500), ("两千五百", 2500),
    ("八百", 800), ("三百五十", 350), ("十四", 14), ("一千零五", 1005),
])
def test_chinese_numerals_parse_to_their_value(text, value):
    assert parse_chinese_numeral(text) == value


def test_bare_thousand_and_hundred_characters_are_words_not_numbers():
    assert parse_chinese_numeral("千") is None  # as in 千万别错过, 千年
    assert parse_chinese_numeral("百") is None


@pytest.mark.parametrize(("value", "text"), [(400, "四百"), (200, "两百"), (250, "两百五十"), (800, "八百"), (1005, "一千零五")])
def test_chinese_numeral_writes_the_value(value, text):
    assert chinese_numeral(value) == text


def test_count_mentions_sees_plain_comma_grouped_and_chinese_forms_but_not_longer_numbers():
    assert count_mentions("2000 words, or 2,000, or 两千字", 2000) == 3
    assert count_mentions("20000 words, 12000 words, 2000.5, 4,2000", 2000) == 0


def test_rewrite_number_keeps_the_script_of_each_mention():
    assert rewrite_number("under 4,000 words; 4000字; 约四千字", 4000, 400) == "under 400 words; 400字; 约四百字"


# --- eligibility of single rows -------------------------------------------------------------------

def test_longen_row_with_chinese_numeral_is_scaled_in_query_and_constraint():
    row = {"language": "zh", "range": "4-6k", "type": "about", "constraint": "大约4000字", "query": "撰写列传约四千字。"}
    assert scale_longen_row(row) == {**row, "constraint": "大约400字", "query": "撰写列传约四百字。"}


def test_longen_range_row_scales_both_numbers():
    row = {"type": "range", "constraint": "2000-3000 words", "query": "Write 2000-3000 words."}
    assert scale_longen_row(row) == {**row, "constraint": "200-300 words", "query": "Write 200-300 words."}


def test_row_mentioning_its_demand_twice_is_not_eligible():
    row = {"type": "below", "constraint": "less than 6000 words", "query": "6000 words at most; yes, 6000."}
    assert scale_longen_row(row) is None


def test_row_whose_scaled_number_is_already_in_the_text_is_not_eligible():
    assert scale_longbench_write_row({"prompt": "List 200 facts in 2000 words.", "length": 2000}) is None


def test_row_whose_demand_leaves_100_800_after_scaling_is_not_eligible():
    assert scale_longbench_write_row({"prompt": "Write 10000 words.", "length": 10000}) is None
    assert scale_longbench_write_row({"prompt": "Write 500 words.", "length": 500}) is None


# --- the real minis -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minis(data_dir):
    return {name: load_benchmark(name, data_dir) for name in MINIS}


@pytest.fixture(scope="module")
def sources(data_dir):
    return {name: load_benchmark(source, data_dir) for name, (source, _) in MINIS.items()}


def test_mini_sizes(minis):
    assert {name: len(rows) for name, rows in minis.items()} == {
        "longen_mini": 12, "longbench_write_mini": 12, "longbench_write_en_mini": 8, "longwrite_ruler_mini": 6,
        "longen_en_small": 40, "longbench_write_en_small": 40,
    }


def test_minis_are_deterministic(minis, data_dir):
    assert all(load_benchmark(name, data_dir) == rows for name, rows in minis.items())


def test_longen_mini_is_balanced_over_type_and_language(minis):
    rows = minis["longen_mini"]
    assert Counter(r["type"] for r in rows) == {"about": 3, "range": 3, "above": 3, "below": 3}
    assert Counter(r["language"] for r in rows) == {"en": 6, "zh": 6}
    assert {(r["type"], r["range"]) for r in rows} == {
        (t, s) for t in ("about", "range", "above", "below") for s in ("2-4k", "4-6k", "6-8k")}


def test_longwrite_ruler_mini_has_one_english_and_one_chinese_prompt_per_demand(minis):
    rows = minis["longwrite_ruler_mini"]
    languages = Counter((r["length"], bool(re.search(r"[\u4e00-\u9fff]", r["prompt"]))) for r in rows)
    assert languages == {(n, zh): 1 for n in (100, 200, 500) for zh in (False, True)}


def test_longen_en_small_is_english_with_ten_rows_per_type(minis):
    rows = minis["longen_en_small"]
    assert Counter(r["type"] for r in rows) == {"about": 10, "range": 10, "above": 10, "below": 10}
    assert {r["language"] for r in rows} == {"en"}


def demands(name: str, row: dict) -> list[int]:
    return longen_demand(row["type"], row["constraint"]) if name.startswith("longen") else [row["length"]]


def test_every_demand_is_the_real_one_divided_by_ten_within_100_800_or_for_small_40_1200(minis, sources):
    for name, rows in minis.items():
        low, high = SMALL_BOUNDS if name.endswith("_small") else (100, 800)
        for row in rows:
            real = sources[name][row["source_index"]]
            assert [n * 10 for n in demands(name, row)] == demands(name, real), (name, row["source_index"])
            assert all(low <= n <= high for n in demands(name, row)), (name, row["source_index"])


def test_every_mini_text_mentions_its_new_number_once_and_the_old_one_never(minis, sources):
    for name, rows in minis.items():
        text_key = "query" if name.startswith("longen") else "prompt"
        for row in rows:
            for new, old in zip(demands(name, row), demands(name, sources[name][row["source_index"]])):
                assert count_mentions(row[text_key], new) == 1, (name, row["source_index"], new)
                assert count_mentions(row[text_key], old) == 0, (name, row["source_index"], old)


def test_mini_rows_differ_from_their_source_only_in_the_scaled_fields(minis, sources):
    for name, rows in minis.items():
        changed = {"query", "constraint"} if name.startswith("longen") else {"prompt", "length"}
        for row in rows:
            real = sources[name][row["source_index"]]
            assert {k: v for k, v in row.items() if k not in changed | {"source_index"}} == \
                   {k: v for k, v in real.items() if k not in changed}
