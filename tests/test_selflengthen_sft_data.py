"""The Generator's and the Extender's fine-tuning examples built from extended answers."""

import random

from selflengthen.sft_data import build_extender_data, build_generator_data, drop_lines

RECORD = {
    "key": "ext/gen/si/en/0/0/0",
    "lang": "en",
    "instruction": "Write a long essay about rivers.",
    "initial": "Rivers shape valleys.\nThey carry silt.\n\nPeople settle by them.",
    "extended": "Rivers shape valleys over ages.\n\nThey carry silt far.\n\nPeople settle by them, and cities grow.",
}


def test_generator_example_pairs_the_instruction_with_the_extended_answer():
    [example] = build_generator_data([RECORD])
    assert example == {
        "messages": [
            {"role": "user", "content": RECORD["instruction"]},
            {"role": "assistant", "content": RECORD["extended"]},
        ]
    }


def test_extender_example_asks_to_expand_the_initial_answer_and_answers_with_the_extended_one():
    [example] = build_extender_data([RECORD], lambda key: random.Random(0), keep=1.0)
    user, assistant = example["messages"]
    assert user["role"] == "user" and RECORD["instruction"] in user["content"]
    assert "Rivers shape valleys.\n\nThey carry silt.\n\nPeople settle by them." in user["content"]
    assert assistant == {"role": "assistant", "content": RECORD["extended"]}


def test_drop_lines_keeps_each_line_with_probability_point_eight():
    text = "\n".join(f"line {i}" for i in range(10000))
    kept = drop_lines(text, random.Random(3)).split("\n\n")
    assert 7800 < len(kept) < 8200


def test_drop_lines_keeps_line_order_and_ignores_blank_lines():
    kept = drop_lines("a\n\nb\nc\n\n\nd", random.Random(5)).split("\n\n")
    assert "" not in kept
    assert kept == [line for line in "abcd" if line in kept]


def test_drop_lines_with_keep_zero_and_one_is_all_or_nothing():
    assert drop_lines("a\nb", random.Random(0), keep=0.0) == ""
    assert drop_lines("a\nb", random.Random(0), keep=1.0) == "a\n\nb"


def test_extender_line_dropout_is_repeatable_per_record():
    rng_for = lambda key: random.Random(key)  # noqa: E731 - the per-record seeding under test
    assert build_extender_data([RECORD], rng_for, keep=0.5) == build_extender_data([RECORD], rng_for, keep=0.5)
