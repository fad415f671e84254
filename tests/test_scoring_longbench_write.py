"""LongBench-Write's S_l and word counter, LongWrite-Ruler's length report, and where the two counters disagree."""

from __future__ import annotations

import pytest

from tasks.scoring import (
    count_words_longbench_write,
    count_words_longen,
    length_score,
    score_predictions,
)

EXACT = dict(abs=1e-12)


def words(n: int) -> str:
    return " ".join(["word"] * n)


# --- S_l ------------------------------------------------------------------------------------------

def test_length_score_is_100_when_output_equals_requirement():
    assert length_score(100, 100) == 100.0


def test_length_score_above_requirement_loses_a_third_per_extra_multiple():
    assert length_score(100, 160) == pytest.approx(80.0, **EXACT)  # 100 * (1 - 0.6 / 3)


def test_length_score_below_requirement_loses_half_per_missing_multiple():
    assert length_score(100, 50) == pytest.approx(50.0, **EXACT)  # 100 * (1 - (2 - 1) / 2)


def test_length_score_is_clipped_at_zero_both_ways():
    assert length_score(100, 400) == 0.0   # 1 - 3/3 = 0 exactly
    assert length_score(100, 1000) == 0.0  # would be -200
    assert length_score(100, 25) == 0.0    # would be -50


def test_length_score_of_an_empty_output_is_zero():
    assert length_score(100, 0) == 0.0


# --- word counter ---------------------------------------------------------------------------------

def test_counter_counts_ascii_letter_words_and_cjk_ideographs():
    assert count_words_longbench_write("Hello world 你好") == 4


def test_counters_disagree_on_punctuation_only_tokens_and_digits():
    text = "Hello -- world ... 2,000 !!"
    assert count_words_longen(text) == 6
    assert count_words_longbench_write(text) == 2


def test_counters_disagree_on_apostrophes_and_letters_glued_to_digits():
    assert count_words_longen("don't abc123 42") == 3
    assert count_words_longbench_write("don't abc123 42") == 2  # "don", "t"; "abc123" and "42" are no words


def test_counters_disagree_on_cjk_punctuation():
    assert count_words_longen("你好。") == 3
    assert count_words_longbench_write("你好。") == 2


def test_latin_word_glued_to_cjk_counts_for_longen_only():
    # Python's \b sees no boundary between a letter and an ideograph (both are \w).
    assert count_words_longen("用Python写") == 3
    assert count_words_longbench_write("用Python写") == 2


# --- score_predictions ----------------------------------------------------------------------------

def lbw_row(length: int, response: str, prompt: str = "Write an essay.") -> dict:
    return {"prompt": prompt, "type": "Popular Science", "length": length, "response": response}


def test_s_l_is_the_mean_of_the_sample_scores():
    rows = [lbw_row(100, words(100)), lbw_row(100, words(160)), lbw_row(100, words(50)), lbw_row(100, "")]
    result = score_predictions("longbench_write_en", rows)
    assert result["n"] == 4
    assert result["S_l"] == pytest.approx((100 + 80 + 50 + 0) / 4, **EXACT)
    assert [s["score"] for s in result["samples"]] == pytest.approx([100, 80, 50, 0], **EXACT)


def test_longbench_write_sample_record_has_the_run_directory_fields():
    sample = score_predictions("longbench_write_mini", [lbw_row(300, words(300), "写一篇300字的文章")])["samples"][0]
    assert sample == {
        "doc_id": 0, "prompt": "写一篇300字的文章", "response": words(300), "words": 300,
        "required_words": 300, "score": 100.0, "type": "Popular Science", "language": "zh",
        "repeated_10gram_share": 1 - 1 / 291, "effective_words": 1, "ends_sentence": False,
        "finish_reason": None, "ended_at_cap": None,
    }


def test_ruler_reports_words_ratio_and_s_l_overall_and_per_demanded_length():
    rows = [lbw_row(100, words(50)), lbw_row(100, words(100)), lbw_row(200, words(300))]
    result = score_predictions("longwrite_ruler_mini", rows)
    assert result["words"] == pytest.approx(150.0, **EXACT)
    assert result["length_ratio"] == pytest.approx((0.5 + 1.0 + 1.5) / 3, **EXACT)
    assert result["S_l"] == pytest.approx((50 + 100 + 100 * (1 - 0.5 / 3)) / 3, **EXACT)
    assert result["by_length"]["100"] == pytest.approx({"n": 2, "words": 75.0, "length_ratio": 0.75, "S_l": 75.0})
    assert result["by_length"]["200"]["length_ratio"] == pytest.approx(1.5, **EXACT)
    assert list(result["by_length"]) == ["100", "200"]
