"""Final data: length demands whose phrasing, kind and bounds agree, in English and Chinese."""

import json
import random
import re

import pytest

from selflengthen.config import FinalDataConfig
from selflengthen.final_data import build_final_data
from selflengthen.length_demand import (
    PHRASINGS,
    LengthDemand,
    carries_length_demand,
    chinese_numeral,
    choose_length_demand,
    length_demand_share,
    phrase_demand,
    with_length_demand,
)
from selflengthen.text import count_words
from tasks import scoring

ARABIC = FinalDataConfig(chinese_numerals_probability=0.0)

# Hand-made markers of each kind, matched longest first (不超过 is "below" though it holds 超过).
MARKERS = {
    "en": {
        "about": ["about", "around", "roughly"],
        "range": ["between", "-", " to "],
        "above": ["more than", "at least", "no fewer than"],
        "below": ["fewer than", "under", "at most"],
    },
    "zh": {
        "about": ["左右", "大约", "约为"],
        "range": ["至", "到", "-"],
        "above": ["不少于", "超过", "至少"],
        "below": ["不超过", "少于", "以内"],
    },
}


def kind_of(phrase: str, lang: str) -> str:
    markers = sorted(((m, kind) for kind, ms in MARKERS[lang].items() for m in ms), key=lambda mk: -len(mk[0]))
    return next(kind for marker, kind in markers if marker in phrase)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("kind", ["about", "range", "above", "below"])
def test_every_phrasing_says_the_kind_it_is_listed_under(lang, kind):
    for template in PHRASINGS[lang][kind]:
        phrase = template.format(n=3000, low=2000, high=3000)
        assert kind_of(phrase, lang) == kind, phrase


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_demand_is_met_by_the_answer_it_is_written_for(lang):
    rng = random.Random(7)
    for words in [*range(2000, 2100), *range(2100, 8000, 37)]:
        demand = choose_length_demand(words, rng, ARABIC)
        phrase = phrase_demand(demand, lang, rng, ARABIC)
        numbers = tuple(int(n) for n in re.findall(r"\d+", phrase))
        assert numbers == demand.numbers and kind_of(phrase, lang) == demand.kind, phrase
        assert demand.satisfied_by(words), (words, demand)


def test_above_and_below_hold_strictly():
    rng = random.Random(1)
    for words in range(1, 5000, 3):
        demand = choose_length_demand(words, rng, FinalDataConfig(type_weights={"above": 1, "below": 1}))
        if demand.kind == "above":
            assert demand.numbers[0] < words
        elif demand.kind == "below":
            assert words < demand.numbers[0]


def test_a_few_words_fall_back_to_an_about_demand():
    demand = choose_length_demand(1, random.Random(0), FinalDataConfig(type_weights={"above": 1}))
    assert demand == LengthDemand("about", (1,))


def test_demand_numbers_are_rounded_to_thousands_when_that_fits():
    rng = random.Random(0)
    demands = [choose_length_demand(5100, rng, FinalDataConfig(type_weights={"about": 1})) for _ in range(20)]
    assert {d.numbers for d in demands} <= {(5000,), (6000,)}


@pytest.mark.parametrize(
    ("kind", "numbers", "bounds"),
    [
        ("about", (2000,), (1600, 2400)),
        ("range", (2000, 3000), (2000, 3000)),
        ("above", (2000,), (2000, 3000)),
        ("below", (2000,), (1000, 2000)),
    ],
)
def test_bounds_follow_longen(kind, numbers, bounds):
    assert LengthDemand(kind, numbers).bounds == pytest.approx(bounds)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (10, "十"),
        (15, "十五"),
        (2000, "二千"),
        (2050, "二千零五十"),
        (2500, "二千五百"),
        (12000, "一万二千"),
        (20010, "二万零一十"),
    ],
)
def test_chinese_numerals(n, text):
    assert chinese_numeral(n) == text


def test_chinese_demands_sometimes_use_chinese_numerals():
    rng = random.Random(0)
    phrases = [phrase_demand(LengthDemand("about", (3000,)), "zh", rng, FinalDataConfig()) for _ in range(40)]
    assert any("三千" in p for p in phrases) and any("3000" in p for p in phrases)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_demand_goes_before_or_after_the_instruction(lang):
    rng = random.Random(0)
    placed = {with_length_demand("Instruction", "DEMAND", lang, rng) for _ in range(30)}
    assert any(p.startswith("DEMAND") for p in placed) and any(p.endswith("DEMAND") for p in placed)


def test_build_final_data_keeps_answers_in_the_window_and_adds_demands(tmp_path):
    iteration = tmp_path / "iter_1"
    iteration.mkdir()
    long_answer, short_answer = " ".join(["word"] * 120) + ".", "Too short."
    rows = [
        {"key": "gen/a/0", "lang": "en", "instruction": "Write a lot.", "answer": long_answer},
        {"key": "gen/a/1", "lang": "en", "instruction": "Write a lot.", "answer": short_answer},
        {"key": "gen/a/2", "lang": "en", "instruction": "Write a lot.", "answer": None},
    ]
    (iteration / "initial_answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    extended = {
        "key": "ext/gen/a/0/0",
        "lang": "en",
        "instruction": "Write a lot.",
        "initial": long_answer,
        "extended": long_answer,
    }
    (iteration / "extended_answers.jsonl").write_text(json.dumps(extended) + "\n")
    out = tmp_path / "final.jsonl"
    count = build_final_data([iteration], out, seed=0, config=FinalDataConfig(min_words=50, max_words=200))
    [example] = [json.loads(line) for line in out.read_text().splitlines()]
    assert count == 1 and example["messages"][1]["content"] == long_answer
    prompt = example["messages"][0]["content"]
    assert "Write a lot." in prompt and count_words(prompt) > count_words("Write a lot.")


def test_build_final_data_names_a_directory_that_is_not_a_synthesis_run(tmp_path):
    with pytest.raises(ValueError, match="initial_answers.jsonl not found"):
        build_final_data([tmp_path], tmp_path / "final.jsonl", seed=0, config=FinalDataConfig())


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_longen_scorer_gives_full_marks_to_the_answer_its_demand_was_written_for(lang):
    rng = random.Random(11)
    for words in range(2000, 8000, 53):
        demand = choose_length_demand(words, rng, ARABIC)
        phrase = phrase_demand(demand, lang, rng, ARABIC)
        bounds = scoring.longen_bounds(demand.kind, phrase)
        assert scoring.longen_score(words, bounds) == 1.0, (words, phrase)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_demand_the_final_data_writes_is_recognised_as_a_length_demand(lang):
    rng = random.Random(3)
    for words in (7, 180, 2345, 6100):
        for numerals in (0.0, 1.0):
            config = FinalDataConfig(chinese_numerals_probability=numerals)
            for _ in range(20):
                phrase = phrase_demand(choose_length_demand(words, rng, config), lang, rng, config)
                assert carries_length_demand(with_length_demand("Write a story about rivers", phrase, lang, rng))


@pytest.mark.parametrize("instruction", ["Write a long essay about topic 1.", "Write about rivers.",
                                         "写一篇关于河流的文章。"])
def test_an_instruction_without_a_demand_carries_none(instruction):
    assert not carries_length_demand(instruction)


def test_the_length_demand_share_counts_the_examples_whose_instruction_carries_one(tmp_path):
    prompts = ["Write about 300 words. Tell a story.", "Tell a story.", "Tell a story. Use 10 to 20 words."]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": p},
                                                     {"role": "assistant", "content": "An answer."}]}) + "\n"
                            for p in prompts))
    assert length_demand_share(data) == pytest.approx(2 / 3)
