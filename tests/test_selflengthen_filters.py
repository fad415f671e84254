"""The answer filters, rule by rule in English and Chinese, and the short-sample dropout."""

import random

import pytest

from selflengthen.config import FilterConfig
from selflengthen.filters import drop_short, keep_probability, passes_filters, trim_unfinished

CONFIG = FilterConfig()
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def test_english_answer_ending_in_a_full_stop_passes():
    assert passes_filters("A short answer that ends well.", "en", CONFIG) == (True, "ok")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_empty_answer_is_rejected(lang):
    assert passes_filters("  \n ", lang, CONFIG) == (False, "empty")


def test_english_answer_cut_mid_sentence_is_rejected():
    assert passes_filters("This answer stops in the middle of a", "en", CONFIG) == (False, "no_terminal_punctuation")


def test_chinese_answer_ending_in_a_chinese_full_stop_passes():
    assert passes_filters("这是一个完整的回答。", "zh", CONFIG) == (True, "ok")


def test_chinese_answer_without_terminal_punctuation_is_rejected():
    assert passes_filters("这是一个没有结尾的", "zh", CONFIG) == (False, "no_terminal_punctuation")


def test_trailing_whitespace_does_not_hide_the_final_punctuation():
    assert passes_filters("Done!  \n", "en", CONFIG)[0]


def test_english_ten_word_repeat_is_rejected():
    run = " ".join(WORDS[:10])
    assert passes_filters(f"{run} and then {run}.", "en", CONFIG) == (False, "repeated_ngram")


def test_english_nine_word_repeat_passes():
    run = " ".join(WORDS[:9])
    assert passes_filters(f"{run} and then {run} again.", "en", CONFIG) == (True, "ok")


def test_english_repeat_detection_ignores_case():
    run = " ".join(WORDS[:10])
    assert passes_filters(f"{run.capitalize()} and {run}.", "en", CONFIG) == (False, "repeated_ngram")


def test_chinese_thirteen_character_repeat_is_rejected():
    run = "春天来了万物复苏大地一片生机"[:13]
    assert passes_filters(f"{run}，{run}。", "zh", CONFIG) == (False, "repeated_ngram")


def test_chinese_twelve_character_repeat_passes():
    run = "春天来了万物复苏大地一片生机"[:12]
    assert passes_filters(f"{run}，{run}。", "zh", CONFIG) == (True, "ok")


def test_chinese_ascii_run_counts_as_one_unit():
    # 12 characters plus one English word make 13 units: a repeat of them is rejected.
    run = "我们使用Python编写程序来处理数据"
    assert passes_filters(f"{run}，然后{run}。", "zh", CONFIG) == (False, "repeated_ngram")


@pytest.mark.parametrize("word", ["revised", "Revision", "response", "versions", "paragraph"])
def test_english_meta_word_in_first_line_is_rejected(word):
    text = f"Here is the {word} text.\nBody line one.\nBody two.\nBody three.\nBody four.\nBody five.\nEnd."
    assert passes_filters(text, "en", CONFIG) == (False, "meta_words")


def test_english_meta_word_in_last_three_lines_is_rejected():
    text = "Start.\nBody.\nMiddle.\nMore.\nI hope this response helps.\nBye.\nEnd."
    assert passes_filters(text, "en", CONFIG) == (False, "meta_words")


def test_english_meta_word_in_the_middle_passes():
    text = "Start.\nBody.\nThe version of events told by the miller.\nMore.\nEven more.\nBye.\nEnd."
    assert passes_filters(text, "en", CONFIG) == (True, "ok")


def test_english_meta_word_must_be_a_whole_word():
    assert passes_filters("A conversion of units.\nEnd.", "en", CONFIG) == (True, "ok")


def test_chinese_meta_word_in_first_line_is_rejected():
    text = "以下是修改后的文章。\n第一段。\n第二段内容。\n第三段内容。\n第四段内容。\n第五段内容。"
    assert passes_filters(text, "zh", CONFIG) == (False, "meta_words")


def test_chinese_meta_word_in_the_middle_passes():
    text = "开头。\n第二行。\n这里谈到版本。\n第四行。\n第五行。\n第六行。"
    assert passes_filters(text, "zh", CONFIG) == (True, "ok")


def test_filter_thresholds_come_from_the_config():
    run = " ".join(WORDS[:5])
    strict = FilterConfig(ngram_words=5)
    assert passes_filters(f"{run} and {run}.", "en", strict) == (False, "repeated_ngram")


def test_keep_probability_of_the_shortest_sample_is_zero():
    assert keep_probability(shorter=0, total=10) == 0.0


def test_keep_probability_of_the_longest_of_ten_is_one_minus_two_thousandths():
    assert keep_probability(shorter=9, total=10) == pytest.approx(1 - 2 * 0.1**3)


def test_keep_probability_at_half_rank_is_three_quarters():
    assert keep_probability(shorter=5, total=10) == pytest.approx(0.75)


def test_keep_probability_is_clipped_at_zero():
    # r = 0.9: 1 - 2 * 0.729 < 0.
    assert keep_probability(shorter=1, total=10) == 0.0


def words(n: int) -> str:
    return " ".join(["word"] * n)


def test_drop_short_always_drops_the_shortest_sample():
    samples = [words(n) for n in range(1, 21)]
    for seed in range(50):
        assert words(1) not in drop_short(samples, random.Random(seed))


def test_drop_short_drops_ties_for_shortest_together():
    samples = ["one two", "three four", "five six seven eight", "a b c d e f"]
    for seed in range(50):
        kept = drop_short(samples, random.Random(seed))
        assert "one two" not in kept and "three four" not in kept


def test_drop_short_keeps_the_longest_nearly_always():
    samples = [words(n) for n in range(1, 21)]
    kept = sum(words(20) in drop_short(samples, random.Random(seed)) for seed in range(500))
    assert kept >= 495


def test_drop_short_keeps_order_and_uses_the_length_function():
    records = [{"t": "bbbbbbbbbb"}, {"t": "a"}, {"t": "cccccccccccc"}]
    kept = drop_short(records, random.Random(0), length=lambda r: len(r["t"]))
    assert {"t": "a"} not in kept
    assert kept == [r for r in records if r in kept]


def test_drop_short_keeps_a_single_sample():
    for seed in range(20):
        assert drop_short(["only one"], random.Random(seed)) == ["only one"]


def test_drop_short_keeps_a_population_of_one_length_whole():
    samples = ["one two", "three four", "five six"]
    assert drop_short(samples, random.Random(0)) == samples


def test_drop_short_ranks_by_words_not_characters():
    many_short_words, one_long_word = "a b c d e f g h", "incomprehensibilities"
    for seed in range(50):
        assert one_long_word not in drop_short([many_short_words, one_long_word], random.Random(seed))


def test_trim_unfinished_is_off_by_default_so_a_cut_answer_is_rejected_as_the_reference_does():
    text = "The town slept. The ferry ran twice a day and"
    assert trim_unfinished(text, FilterConfig()) == text
    assert passes_filters(trim_unfinished(text, FilterConfig()), "en", FilterConfig()) == (False, "no_terminal_punctuation")


def test_trim_unfinished_cuts_a_cut_answer_back_to_its_last_finished_sentence():
    config = FilterConfig(trim_unfinished=True)
    assert trim_unfinished("The town slept. Did the ferry run? It ran twice a day and", config) == (
        "The town slept. Did the ferry run?")
    assert trim_unfinished("他走了。然后", config) == "他走了。"


def test_trim_unfinished_leaves_a_finished_answer_and_one_with_no_sentence_end_alone():
    config = FilterConfig(trim_unfinished=True)
    assert trim_unfinished("  All done.  ", config) == "All done."
    assert trim_unfinished("no sentence ends here", config) == "no sentence ends here"


@pytest.mark.parametrize(
    ("text", "trimmed"),
    [
        ("The door was shut. Then she didn't want to go and", "The door was shut."),
        ("He read the boys' letters. Then the boys' mother", "He read the boys' letters."),
        ("It cost 3.14 dollars. The U.S.A and", "It cost 3.14 dollars."),
        ('"Go," he said. Then (quietly) he', '"Go," he said.'),
    ],
)
def test_trim_unfinished_never_cuts_inside_a_word(text, trimmed):
    assert trim_unfinished(text, FilterConfig(trim_unfinished=True)) == trimmed


def test_trim_unfinished_keeps_a_closing_quote_or_bracket_right_after_a_sentence_end():
    config = FilterConfig(trim_unfinished=True)
    assert trim_unfinished('She said "Go home." Then she', config) == 'She said "Go home."'
    assert trim_unfinished("He left (quietly.) And then", config) == "He left (quietly.)"
    assert trim_unfinished("Really?! Yes and", config) == "Really?!"
    assert trim_unfinished("他说：“走吧。”然后", config) == "他说：“走吧。”"


def test_trim_unfinished_leaves_an_answer_whose_only_marks_are_inside_words_alone():
    text = "She didn't know that 3.14 was pi and"
    assert trim_unfinished(text, FilterConfig(trim_unfinished=True)) == text
