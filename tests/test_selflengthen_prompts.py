"""Every prompt template exists in English and Chinese and uses exactly its documented fields."""

import string

import pytest

from selflengthen.prompts import load_prompt

FIELDS = {"self_instruct": {"first", "second"}, "judge_instruction": {"instruction"}, "extend": {"instruction", "answer"}}


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("name", sorted(FIELDS))
def test_template_uses_exactly_its_fields(name, lang):
    used = {field for _, field, _, _ in string.Formatter().parse(load_prompt(name, lang)) if field is not None}
    assert used == FIELDS[name]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_self_instruct_prompt_ends_where_the_third_instruction_begins(lang):
    assert load_prompt("self_instruct", lang).endswith({"en": "Instruction 3:", "zh": "指令3："}[lang])


def test_an_unknown_language_is_named():
    with pytest.raises(ValueError, match="no 'extend' prompt for language 'fr'"):
        load_prompt("extend", "fr")
