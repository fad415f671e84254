"""LonGen length-following: the word counter, the bounds of each constraint type, the score at every boundary."""

from __future__ import annotations

import pytest

from tasks.scoring import (
    ScoringInputError,
    count_words_longen,
    longen_bounds,
    longen_score,
    score_predictions,
)

EXACT = dict(abs=1e-12)


def words(n: int) -> str:
    return " ".join(["word"] * n)


def row(constraint_type: str, constraint: str, response: str, language: str = "en") -> dict:
    return {"type": constraint_type, "constraint": constraint, "query": f"Write {constraint}.",
            "language": language, "range": "2-4k", "response": response}


def score_of(constraint_type: str, constraint: str, response: str) -> float:
    return score_predictions("longen", [row(constraint_type, constraint, response)])["samples"][0]["score"]


# --- word counter -------------------------------------------------------------------------------

def test_counter_splits_latin_text_on_whitespace_and_keeps_punctuation_tokens():
    assert count_words_longen("Hello, world!  --  2,000 words.\n") == 5


def test_counter_counts_each_cjk_character_and_cjk_punctuation_once():
    # 你 好 ， 世 界 。 : ideographs, a full-width comma (U+FF0C) and an ideographic full stop (U+3002).
    assert count_words_longen("你好，世界。") == 6


def test_counter_separates_words_glued_to_cjk_characters():
    assert count_words_longen("我爱Python编程 and AI") == 7


def test_counter_gives_zero_for_empty_and_whitespace_only_text():
    assert count_words_longen("") == 0
    assert count_words_longen(" \n\t ") == 0


# --- bounds -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("constraint_type", "constraint", "bounds"), [
    ("about", "around 2000 words", (1600.0, 2400.0)),
    ("about", "大约3500字", (2800.0, 4200.0)),
    ("range", "2000-3000 words", (2000.0, 3000.0)),
    ("range", "2000字至4000字", (2000.0, 4000.0)),
    ("above", "more than 2,500 words", (2500.0, 3750.0)),
    ("above", "大于7000字", (7000.0, 10500.0)),
    ("below", "less than 2500 words", (1250.0, 2500.0)),
    ("below", "小于8000字", (4000.0, 8000.0)),
])
def test_bounds_follow_the_published_rule_for_each_type_and_language(constraint_type, constraint, bounds):
    assert longen_bounds(constraint_type, constraint) == bounds


def test_bounds_reject_a_range_with_one_number():
    with pytest.raises(ScoringInputError, match="should hold 2 number"):
        longen_bounds("range", "around 2000 words")


def test_bounds_reject_an_unknown_type():
    with pytest.raises(ScoringInputError, match="unknown LonGen constraint type 'exactly'"):
        longen_bounds("exactly", "exactly 2000 words")


# --- score at the boundaries (about 100 -> [80, 120]) ------------------------------------------

def test_about_constraint_scores_one_inside_bounds():
    assert score_of("about", "around 100 words", words(100)) == 1.0


def test_about_constraint_scores_one_at_exactly_a_and_exactly_b():
    assert score_of("about", "around 100 words", words(80)) == 1.0
    assert score_of("about", "around 100 words", words(120)) == 1.0


def test_about_constraint_just_below_a_scores_2n_over_a_minus_1():
    assert score_of("about", "around 100 words", words(79)) == pytest.approx(0.975, **EXACT)


def test_about_constraint_just_above_b_scores_3_minus_2n_over_b():
    assert score_of("about", "around 100 words", words(121)) == pytest.approx(3 - 242 / 120, **EXACT)
    assert score_of("about", "around 100 words", words(121)) == pytest.approx(0.98333333333333, abs=1e-12)


def test_score_is_clipped_at_zero_far_outside_the_bounds():
    assert longen_score(40, (80.0, 120.0)) == 0.0  # 2*40/80 - 1 = 0 exactly
    assert longen_score(10, (80.0, 120.0)) == 0.0  # would be -0.75
    assert longen_score(180, (80.0, 120.0)) == 0.0  # 3 - 3 = 0 exactly
    assert longen_score(500, (80.0, 120.0)) == 0.0  # would be -5.33


def test_zero_length_answer_scores_zero():
    sample = score_predictions("longen", [row("about", "around 100 words", "")])["samples"][0]
    assert (sample["words"], sample["score"]) == (0, 0.0)


def test_range_constraint_boundaries():  # 10-20 -> [10, 20]
    assert score_of("range", "10-20 words", words(10)) == 1.0
    assert score_of("range", "10-20 words", words(20)) == 1.0
    assert score_of("range", "10-20 words", words(9)) == pytest.approx(0.8, **EXACT)
    assert score_of("range", "10-20 words", words(21)) == pytest.approx(0.9, **EXACT)


def test_above_constraint_boundaries():  # more than 10 -> [10, 15]
    assert score_of("above", "more than 10 words", words(10)) == 1.0
    assert score_of("above", "more than 10 words", words(15)) == 1.0
    assert score_of("above", "more than 10 words", words(9)) == pytest.approx(0.8, **EXACT)
    assert score_of("above", "more than 10 words", words(16)) == pytest.approx(13 / 15, **EXACT)


def test_below_constraint_boundaries():  # less than 10 -> [5, 10]
    assert score_of("below", "less than 10 words", words(5)) == 1.0
    assert score_of("below", "less than 10 words", words(10)) == 1.0
    assert score_of("below", "less than 10 words", words(4)) == pytest.approx(0.6, **EXACT)
    assert score_of("below", "less than 10 words", words(11)) == pytest.approx(0.8, **EXACT)


def test_cjk_answer_is_counted_per_character():  # 大约10字 -> [8, 12]
    assert score_of("about", "大约10字", "一二三四五六七八") == 1.0
    assert score_of("about", "大约10字", "一二三四五六七") == pytest.approx(0.75, **EXACT)


def test_mixed_script_answer_counts_characters_and_words():
    sample = score_predictions("longen", [row("below", "小于8字", "你好 world。Hello!", "zh")])["samples"][0]
    assert sample["words"] == 5  # 你 好 。 + world + Hello!
    assert sample["score"] == 1.0  # [4, 8]


# --- aggregates and the scores.json shape -------------------------------------------------------

def test_aggregates_are_means_per_type_and_overall_with_none_for_empty_types():
    rows = [
        row("about", "around 100 words", words(100)),   # 1.0
        row("about", "around 100 words", words(79)),    # 0.975
        row("below", "less than 10 words", words(4)),   # 0.6
    ]
    result = score_predictions("longen_mini", rows)
    assert result["task"] == "longen_mini" and result["n"] == 3
    assert result["about"] == pytest.approx((1.0 + 0.975) / 2, **EXACT)
    assert result["below"] == pytest.approx(0.6, **EXACT)
    assert result["range"] is None and result["above"] is None
    assert result["overall"] == pytest.approx((1.0 + 0.975 + 0.6) / 3, **EXACT)


def test_sample_record_has_the_run_directory_fields():
    rows = [{**row("range", "200-300 words", words(250)), "doc_id": 7}]
    sample = score_predictions("longen", rows)["samples"][0]
    assert sample == {
        "doc_id": 7, "prompt": "Write 200-300 words.", "response": words(250), "words": 250,
        "required_words": 250, "bounds": [200.0, 300.0], "type": "range", "language": "en", "score": 1.0,
        "repeated_10gram_share": 1 - 1 / 241, "effective_words": 1, "ends_sentence": False,
        "finish_reason": None, "ended_at_cap": None,
    }


def test_empty_prediction_list_reports_none_everywhere():
    result = score_predictions("longen", [])
    assert result["n"] == 0 and result["overall"] is None and result["samples"] == []
    assert result["repeated_10gram_share"] is None and result["ended_at_cap"] is None


def test_row_without_response_names_its_line():
    rows = [row("about", "around 100 words", "x"), {k: v for k, v in row("about", "around 100 words", "x").items()
                                                     if k != "response"}]
    with pytest.raises(ScoringInputError, match=r"^row 2 has no 'response' field$"):
        score_predictions("longen", rows)


def test_row_with_unparseable_constraint_names_its_line():
    with pytest.raises(ScoringInputError, match=r"^row 1: LonGen constraint"):
        score_predictions("longen", [row("range", "around 100 words", "x")])
