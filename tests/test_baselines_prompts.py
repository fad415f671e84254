"""The baselines' prompt templates exist in English and Chinese and use exactly their fields."""

import string

import pytest

from selflengthen.prompts import load_prompt, render_prompt

FIELDS = {
    "backtranslation_instruction": {"beginning", "words"},
    "backtranslation_rating": {"instruction", "beginning", "words", "scale"},
    "imitation_plan": {"instruction"},
    "imitation_section": {"instruction", "plan", "written", "number", "section", "words"},
}


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("name", sorted(FIELDS))
def test_baseline_template_uses_exactly_its_fields(name, lang):
    used = {field for _, field, _, _ in string.Formatter().parse(load_prompt(name, lang)) if field is not None}
    assert used == FIELDS[name]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_plan_template_shows_a_plan_the_plan_parser_reads(lang):
    from selflengthen.baselines.parsing import parse_plan

    number = {"en": "[a number]", "zh": "[一个数字]"}[lang]
    example = [line for line in render_prompt("imitation_plan", lang, instruction="x").splitlines() if number in line]
    filled = "\n".join(line.replace(number, "300") for line in example)
    sections = parse_plan(filled)
    assert sections is not None and [s.words for s in sections] == [300, 300]
