"""Word counts, paragraph splits and the leading parts the Extender keeps."""

from selflengthen.text import count_words, first_half, leading_fraction, split_paragraphs


def test_count_words_counts_english_words_by_whitespace():
    assert count_words("The quick brown fox.") == 4


def test_count_words_counts_each_chinese_character_and_punctuation_mark_once():
    assert count_words("写一篇长文。") == 6


def test_count_words_adds_english_words_inside_chinese_text():
    assert count_words("我喜欢Python语言") == 6


def test_split_paragraphs_uses_blank_lines_when_there_are_more_than_two():
    text = "One.\nstill one.\n\nTwo.\n\nThree."
    assert split_paragraphs(text) == ["One.\nstill one.", "Two.", "Three."]


def test_split_paragraphs_falls_back_to_single_newlines_for_two_blank_line_paragraphs():
    text = "One.\nTwo.\n\nThree."
    assert split_paragraphs(text) == ["One.", "Two.", "Three."]


def test_split_paragraphs_drops_empty_pieces():
    assert split_paragraphs("\n\nOne.\n\n\n\nTwo.\n\n\n\nThree.\n") == ["One.", "Two.", "Three."]


def test_first_half_rounds_down():
    assert first_half(["a", "b", "c", "d", "e"]) == ["a", "b"]


def test_first_half_of_a_single_paragraph_is_that_paragraph():
    assert first_half(["only"]) == ["only"]


def test_leading_fraction_keeps_the_first_two_thirds_of_paragraphs():
    assert leading_fraction("a\n\nb\n\nc\n\nd\n\ne\n\nf", 2 / 3) == "a\n\nb\n\nc\n\nd"


def test_leading_fraction_rounds_down_to_nothing_for_one_paragraph():
    assert leading_fraction("a single paragraph", 2 / 3) == ""


def test_leading_fraction_keeps_two_of_three_paragraphs_exactly():
    assert leading_fraction("a\n\nb\n\nc", 2 / 3) == "a\n\nb"


def test_leading_fraction_splits_line_by_line_when_split_paragraphs_does():
    rewrite = "First enriched paragraph.\nSecond one.\nThird one."
    assert len(split_paragraphs(rewrite)) == 3
    assert leading_fraction(rewrite, 2 / 3) == "First enriched paragraph.\nSecond one."


def test_leading_fraction_keeps_the_rewrites_own_line_breaks():
    assert leading_fraction("One.\nTwo.\n\nThree.", 2 / 3) == "One.\nTwo."
