"""Reading a model's rating and a teacher's plan: the forms models really use, and what is refused."""

import pytest

from selflengthen.baselines.parsing import PlanSection, parse_plan, parse_rating, small_number


@pytest.mark.parametrize(
    "reply, rating",
    [
        ("Score: 4", 4),
        ("score:5.", 5),
        ("**Rating**: 3", 3),
        ("4/5", 4),
        ("I would rate this pair 2 out of 5.", 2),
        ("评分：四", 4),
        ("评分：4分", 4),
        ("我给4分。", 4),
        ("5", 5),
        ("The text fits the request well.\n\nScore: 4 (it lacks a conclusion; 2 paragraphs are off-topic)", 4),
    ],
)
def test_rating_is_read_from_the_usual_forms(reply, rating):
    assert parse_rating(reply, scale=5) == rating


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "yes",
        "�unct�é@��8te co3",
        "Score: 7",
        "Score: 0",
        "3 or 4",
        "It is accurate, maybe 3, maybe 4.",
        "9/10",
        "ĠĠ}|Ċ 12 13",
    ],
)
def test_rating_off_the_scale_or_ambiguous_is_none(reply):
    assert parse_rating(reply, scale=5) is None


def test_rating_out_of_the_scale_denominator_only():
    assert parse_rating("8/10", scale=10) == 8
    assert parse_rating("8/10", scale=5) is None


def test_rating_label_needs_a_word_boundary_so_accurate_is_not_rate():
    assert parse_rating("It is accurate 5 times over, and 3 more", scale=5) is None


@pytest.mark.parametrize("text, value", [("7", 7), ("四", 4), ("十", 10), ("十二", 12), ("二十", 20), ("二十三", 23)])
def test_small_numbers_in_digits_and_chinese_numerals(text, value):
    assert small_number(text) == value


@pytest.mark.parametrize("text", ["", "百", "十十", "二二"])
def test_small_number_refuses_what_it_cannot_read(text):
    assert small_number(text) is None


def test_plan_in_agentwrite_form_with_preamble_and_total():
    reply = (
        "Here is the plan:\n"
        "Paragraph 1 - Main point: Introduce the river and its 3 towns - Word count: 400 words\n"
        "Paragraph 2 - Main point: The floods of the last century - Word count: 300-500 words\n"
        "Total: 800 words"
    )
    assert parse_plan(reply) == [
        PlanSection(1, "Introduce the river and its 3 towns", 400),
        PlanSection(2, "The floods of the last century", 400),
    ]


def test_plan_as_numbered_list_with_budget_in_brackets_or_on_the_next_line():
    reply = "1. Introduction (300 words)\n2. Body: the causes\n   - Word count: 500 words\n3. Conclusion (about 1,200 words)"
    assert parse_plan(reply) == [
        PlanSection(1, "Introduction", 300),
        PlanSection(2, "Body: the causes", 500),
        PlanSection(3, "Conclusion", 1200),
    ]


def test_plan_in_markdown_bold_sections():
    reply = "**Section 1**: Opening scene — 250 words\n**Section 2**: The storm — 600 words"
    assert parse_plan(reply) == [PlanSection(1, "Opening scene", 250), PlanSection(2, "The storm", 600)]


def test_chinese_plan_with_chinese_section_numbers_and_zi_budgets():
    reply = "第一部分 - 主要内容：春天的景色 - 字数要求：500字\n第二部分 - 主要内容：人们的活动 - 字数要求：800字"
    assert parse_plan(reply) == [PlanSection(1, "春天的景色", 500), PlanSection(2, "人们的活动", 800)]


def test_chinese_plan_as_numbered_list():
    assert parse_plan("1、开头（300字）\n2、结尾（200字）") == [PlanSection(1, "开头", 300), PlanSection(2, "结尾", 200)]


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "I will write a great essay about rivers.",
        "1. Introduction (300 words)\n3. Conclusion (200 words)",
        "2. Introduction (300 words)\n3. Conclusion (200 words)",
        "1. Introduction\n2. Conclusion (200 words)",
        "1. Introduction (0 words)\n2. Conclusion (200 words)",
    ],
)
def test_plan_without_numbered_sections_1_to_n_each_with_a_budget_is_refused(reply):
    assert parse_plan(reply) is None


def test_a_decimal_number_does_not_start_a_section_its_line_belongs_to_the_one_before():
    assert parse_plan("1. Intro (300 words)\n1.5 metres of water rose\n2. End (100 words)") == [
        PlanSection(1, "Intro 1.5 metres of water rose", 300),
        PlanSection(2, "End", 100),
    ]


def test_plan_without_budgets_takes_the_default_budget_when_one_is_set():
    reply = "1. The history of the river\n2. The people who live near it\n3. What comes next"
    assert parse_plan(reply) is None
    sections = parse_plan(reply, default_words=250)
    assert [(s.number, s.words) for s in sections] == [(1, 250), (2, 250), (3, 250)]
    assert sections[0].point == "The history of the river"


def test_stated_budgets_win_over_the_default():
    sections = parse_plan("1. Opening (100 words)\n2. Body", default_words=300)
    assert [s.words for s in sections] == [100, 300]
