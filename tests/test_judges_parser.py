"""The judge-reply parser on a corpus of ugly replies, each with its expected parse or error."""

from __future__ import annotations

import pytest

from judges import JudgeReplyError, load_rubric, parse_reply
from judges.json_spans import json_objects
from judges.parser import normalize_key

LBW = load_rubric("longbench_write")
LONGEN = load_rubric("longen")

FULL_LBW = {"Relevance": 4, "Accuracy": 3, "Coherence": 4, "Clarity": 5, "Breadth and Depth": 2, "Reading Experience": 3}
FULL_LBW_TEXT = (
    '{"Relevance": 4, "Accuracy": 3, "Coherence": 4, "Clarity": 5, "Breadth and Depth": 2, "Reading Experience": 3}'
)

# (id, reply, expected scores as {dimension: value}, expected missing dimensions)
PARSED_LBW = [
    ("plain_json", FULL_LBW_TEXT, FULL_LBW, ()),
    ("json_code_fence", f"```json\n{FULL_LBW_TEXT}\n```", FULL_LBW, ()),
    ("prose_around", f"Here is my assessment.\n{FULL_LBW_TEXT}\nOverall a decent answer.", FULL_LBW, ()),
    ("single_quotes", FULL_LBW_TEXT.replace('"', "'"), FULL_LBW, ()),
    ("trailing_comma", FULL_LBW_TEXT[:-1] + ",}", FULL_LBW, ()),
    (
        "string_scores",
        '{"Relevance": "4", "Accuracy": "3", "Coherence": "4", "Clarity": "5", '
        '"Breadth and Depth": "2", "Reading Experience": "3"}',
        FULL_LBW,
        (),
    ),
    (
        "fractions_and_floats",
        '{"Relevance": "4/5", "Accuracy": 3.0, "Coherence": "4 out of 5", "Clarity": " 5 ", '
        '"Breadth and Depth": 2, "Reading Experience": "3.0"}',
        FULL_LBW,
        (),
    ),
    (
        "key_variants",
        '{"relevance": 4, "ACCURACY": 3, "Coherence ": 4, "clarity": 5, "breadth_and_depth": 2, "ReadingExperience": 3}',
        FULL_LBW,
        (),
    ),
    (
        "ampersand_key",
        '{"Relevance": 4, "Accuracy": 3, "Coherence": 4, "Clarity": 5, "Breadth & Depth": 2, "reading-experience": 3}',
        FULL_LBW,
        (),
    ),
    ("nested_under_scores", '{"reasoning": "ok", "scores": ' + FULL_LBW_TEXT + "}", FULL_LBW, ()),
    (
        "nested_score_objects",
        '{"Relevance": {"score": 4, "reason": "on topic"}, "Accuracy": {"score": 3}, "Coherence": {"Score": 4}, '
        '"Clarity": {"rating": 5}, "Breadth and Depth": {"score": 2}, "Reading Experience": {"score": 3}}',
        FULL_LBW,
        (),
    ),
    (
        "list_of_named_items",
        '[{"dimension": "Relevance", "score": 4}, {"dimension": "Accuracy", "score": 3}, '
        '{"dimension": "Coherence", "score": 4}, {"dimension": "Clarity", "score": 5}, '
        '{"dimension": "Breadth and Depth", "score": 2}, {"dimension": "Reading Experience", "score": 3}]',
        FULL_LBW,
        (),
    ),
    (
        "missing_dimension_counts_as_three",
        '{"Relevance": 4, "Accuracy": 3, "Coherence": 4, "Clarity": 5, "Breadth and Depth": 2}',
        {**FULL_LBW, "Reading Experience": 3},
        ("Reading Experience",),
    ),
    (
        "null_value_is_a_missing_dimension",
        '{"Relevance": 4, "Accuracy": null, "Coherence": 4, "Clarity": 5, "Breadth and Depth": 2, "Reading Experience": 3}',
        {**FULL_LBW, "Accuracy": 3},
        ("Accuracy",),
    ),
    (
        "truncated_json_salvaged",
        '```json\n{"Relevance": 4, "Accuracy": 3, "Coherence": 4, "Clarity": 5, "Breadth and Depth": 2, "Reading Exp',
        {**FULL_LBW, "Reading Experience": 3},
        ("Reading Experience",),
    ),
    (
        "markdown_prose_pairs",
        "**Relevance**: 4/5\n**Accuracy**: 3\n**Coherence**: 4\n**Clarity**: 5\n**Breadth and Depth**: 2\n"
        "**Reading Experience**: 3",
        FULL_LBW,
        (),
    ),
    (
        "most_complete_of_two_objects",
        'Example format: {"Relevance": 1}\nMy grades: ' + FULL_LBW_TEXT,
        FULL_LBW,
        (),
    ),
    (
        "braces_inside_strings",
        '{"comment": "uses {curly} braces and it\'s fine", "Relevance": 4, "Accuracy": 3, "Coherence": 4, '
        '"Clarity": 5, "Breadth and Depth": 2, "Reading Experience": 3}',
        FULL_LBW,
        (),
    ),
]

# (id, reply, words the one-line reason must contain)
REJECTED_LBW = [
    ("empty", "", "empty reply"),
    ("whitespace_only", "  \n\t ", "empty reply"),
    ("garbage", "lorem ipsum <|im_end|> 0123 ;;", "no JSON object"),
    ("json_without_dimensions", '{"overall": 4, "comment": "nice"}', "none of the rubric's dimensions"),
    ("truncated_before_any_score", '{"Relev', "truncated JSON"),
    ("out_of_range_high", FULL_LBW_TEXT.replace('"Clarity": 5', '"Clarity": 6'), "Clarity=6 is outside the scale 1–5"),
    ("out_of_range_zero", FULL_LBW_TEXT.replace('"Accuracy": 3', '"Accuracy": 0'), "Accuracy=0 is outside"),
    ("fraction_of_another_scale", FULL_LBW_TEXT.replace('"Relevance": 4', '"Relevance": "8/10"'), "fraction of 10"),
    ("word_score", FULL_LBW_TEXT.replace('"Relevance": 4', '"Relevance": "good"'), "Relevance='good' is not a score"),
    ("boolean_score", FULL_LBW_TEXT.replace('"Relevance": 4', '"Relevance": true'), "is not a score"),
    ("too_many_missing", '{"Relevance": 4, "Accuracy": 3, "Coherence": 4}', "missing 3 of 6 dimensions"),
]


@pytest.mark.parametrize("reply, expected, missing", [c[1:] for c in PARSED_LBW], ids=[c[0] for c in PARSED_LBW])
def test_longbench_write_reply_parses_to_expected_scores(reply, expected, missing):
    parsed = parse_reply(reply, LBW)
    assert parsed.scores == {d: float(v) for d, v in expected.items()}
    assert parsed.missing == missing


@pytest.mark.parametrize("reply, reason", [c[1:] for c in REJECTED_LBW], ids=[c[0] for c in REJECTED_LBW])
def test_unusable_longbench_write_reply_raises_one_line_reason(reply, reason):
    with pytest.raises(JudgeReplyError) as info:
        parse_reply(reply, LBW)
    message = str(info.value)
    assert reason in message
    assert "\n" not in message


def test_longen_reply_on_ten_point_scale_parses():
    reply = '{"Relevance": 8, "Coherence": "7/10", "Accuracy": 9, "Consistency": 6, "Clarity": 10, "Creativity": 1, "Engagement": 7.5}'
    parsed = parse_reply(reply, LONGEN)
    assert parsed.scores == {
        "Relevance": 8.0, "Coherence": 7.0, "Accuracy": 9.0, "Consistency": 6.0,
        "Clarity": 10.0, "Creativity": 1.0, "Engagement": 7.5,
    }


def test_longen_reply_missing_a_dimension_is_rejected_because_longen_has_no_gap_rule():
    reply = '{"Relevance": 8, "Coherence": 7, "Accuracy": 9, "Consistency": 6, "Clarity": 10, "Creativity": 1}'
    with pytest.raises(JudgeReplyError, match="missing 1 of 7 dimensions \\(Engagement\\)"):
        parse_reply(reply, LONGEN)


def test_longen_score_above_ten_is_rejected_not_clamped():
    reply = '{"Relevance": 11, "Coherence": 7, "Accuracy": 9, "Consistency": 6, "Clarity": 10, "Creativity": 1, "Engagement": 7}'
    with pytest.raises(JudgeReplyError, match="Relevance=11 is outside the scale 1–10"):
        parse_reply(reply, LONGEN)


@pytest.mark.parametrize(
    "variant", ["Breadth and Depth", "breadth_and_depth", "Breadth & Depth", "BreadthAndDepth", "breadth-depth", " BREADTH AND DEPTH "]
)
def test_dimension_name_variants_normalize_alike(variant):
    assert normalize_key(variant) == normalize_key("Breadth and Depth")


def test_echoed_example_object_is_skipped_for_the_real_scores_after_it():
    example = '{"Relevance": 3, "Accuracy": 4, "Coherence": 3, "Clarity": 4, "Breadth and Depth": 2, "Reading Experience": 3}'
    assert example in LBW.template
    parsed = parse_reply(f"The format is {example}\nMy grades: {FULL_LBW_TEXT}", LBW)
    assert parsed.scores == {d: float(v) for d, v in FULL_LBW.items()}


def test_of_two_equally_complete_objects_the_last_is_scored():
    first = FULL_LBW_TEXT.replace('"Relevance": 4', '"Relevance": 1')
    parsed = parse_reply(f"Draft: {first}\nFinal: {FULL_LBW_TEXT}", LBW)
    assert parsed.scores["Relevance"] == 4.0


def test_a_reply_that_only_echoes_the_example_is_scored_as_written():
    example = '{"Relevance": 3, "Accuracy": 4, "Coherence": 3, "Clarity": 4, "Breadth and Depth": 2, "Reading Experience": 3}'
    assert parse_reply(example, LBW).scores["Breadth and Depth"] == 2.0


@pytest.mark.parametrize("reply", ["[" * 3000, "[" * 3000 + "]" * 3000, '{"a": ' * 3000 + "1" + "}" * 3000])
def test_deep_nesting_is_a_reply_error_not_a_recursion_error(reply):
    with pytest.raises(JudgeReplyError):
        parse_reply(reply, LBW)


@pytest.mark.parametrize("opener", ["{", "[", '{"a": '])
def test_unclosed_openers_are_scanned_in_linear_work(opener):
    text = opener * 20_000
    with pytest.raises(JudgeReplyError, match="truncated JSON|no JSON object"):
        parse_reply(text, LBW)
    assert json_objects(text).steps <= 2 * len(text)


def test_scores_nested_inside_an_unclosed_brace_are_still_found():
    assert parse_reply("{ oops " + FULL_LBW_TEXT, LBW).scores == {d: float(v) for d, v in FULL_LBW.items()}


def test_dash_separated_prose_scores_are_salvaged():
    reply = "Relevance - 4\nAccuracy – 3\nCoherence: 4\nClarity - 5\nBreadth and Depth = 2\nReading Experience — 3"
    parsed = parse_reply(reply, LBW)
    assert parsed.scores == {d: float(v) for d, v in FULL_LBW.items()} and parsed.missing == ()


def test_a_dimension_absent_from_prose_is_reported_missing_not_silently_filled():
    reply = "Relevance - 4\nAccuracy - 3\nCoherence - 4\nBreadth and Depth - 2\nReading Experience - 3"
    parsed = parse_reply(reply, LBW)
    assert parsed.missing == ("Clarity",)
    with pytest.raises(JudgeReplyError, match="missing 1 of 7 dimensions \\(Clarity\\)"):
        parse_reply(reply.replace("Breadth and Depth", "Creativity - 5\nEngagement - 6\nConsistency"), LONGEN)
