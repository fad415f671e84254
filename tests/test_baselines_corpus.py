"""The backtranslation corpus: loading, fitting texts to the trainer, excerpts; and the configs' errors."""

import json

import pytest

from harness.config import from_dict
from harness.errors import UserError
from selflengthen.baselines.config import BacktranslationConfig, ImitationConfig
from selflengthen.baselines.corpus import fit_to_length, load_corpus, load_jsonl_texts, token_counter
from selflengthen.baselines.excerpt import beginning, ending
from selflengthen.text import count_words

WORDS = lambda text: count_words(text)  # noqa: E731 - one token per word keeps the arithmetic visible


def write_corpus(path, texts):
    path.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def test_a_text_that_fits_is_kept_whole():
    text = "one two three\n\nfour five"
    assert fit_to_length(text, 5, WORDS) == text


def test_a_long_text_is_cut_after_the_last_whole_paragraph_that_fits():
    text = "one two three\n\nfour five\n\nsix seven eight"
    assert fit_to_length(text, 7, WORDS) == "one two three\n\nfour five"
    assert fit_to_length(text, 4, WORDS) == "one two three"


def test_a_text_whose_first_paragraph_is_too_long_does_not_fit_at_all():
    assert fit_to_length("one two three\n\nfour", 2, WORDS) is None


def test_the_estimated_token_count_is_words_times_tokens_per_word_rounded_up(tmp_path):
    config = BacktranslationConfig(corpus="x.jsonl", tokens_per_word=1.5)
    assert token_counter(config)("one two three") == 5


def test_the_configured_tokenizer_counts_exactly(tiny_model_dir):
    from transformers import AutoTokenizer

    config = BacktranslationConfig(corpus="x.jsonl", tokenizer=str(tiny_model_dir))
    text = "The quick brown fox jumps over the lazy dog."
    expected = len(AutoTokenizer.from_pretrained(tiny_model_dir)(text, add_special_tokens=False)["input_ids"])
    assert token_counter(config)(text) == expected


def test_beginning_and_ending_cut_at_whole_words_in_both_languages():
    assert beginning("The river  runs\nto the sea.", 3) == "The river  runs"
    assert ending("The river runs to the sea.", 2) == "the sea."
    assert beginning("春天来了。", 2) == "春天"
    assert ending("春天来了。", 2) == "了。"
    assert beginning("short", 10) == ending("short", 10) == "short"


def test_jsonl_corpus_keeps_nonempty_texts_in_order(tmp_path):
    path = write_corpus(tmp_path / "c.jsonl", ["First essay.", "  ", "Second essay."])
    assert load_jsonl_texts(path) == ["First essay.", "Second essay."]


def test_a_corpus_line_without_text_is_named(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"body": "no"}) + "\n")
    with pytest.raises(ValueError, match=r"c.jsonl:2: expected a string field 'text'"):
        load_jsonl_texts(path)


def test_a_missing_corpus_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="corpus file not found: .*missing.jsonl"):
        load_corpus(BacktranslationConfig(corpus=str(tmp_path / "missing.jsonl")))


def test_the_federalist_corpus_loads_85_long_essays(data_dir):
    texts = load_corpus(BacktranslationConfig(corpus=str(data_dir / "federalist.jsonl")))
    assert len(texts) == 85 and min(count_words(t) for t in texts) >= 900


def test_a_dataset_column_loads_through_datasets(tmp_path, monkeypatch):
    # The Hub itself is out of reach here; a local dataset folder takes the same code path.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "essays"
    folder.mkdir()
    write_corpus(folder / "train.jsonl", ["First essay.", "Second essay."])
    config = from_dict(BacktranslationConfig, {"corpus_hf": {"name": str(folder), "column": "text"}})
    assert load_corpus(config) == ["First essay.", "Second essay."]
    config.corpus_hf.column = "body"
    with pytest.raises(ValueError, match=r"has no column 'body'; columns: id, text"):
        load_corpus(config)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({}, "set exactly one of corpus"),
        ({"corpus": "a.jsonl", "corpus_hf": {"name": "x"}}, "set exactly one of corpus"),
        ({"corpus": "a.jsonl", "language": "fr"}, "language must be one of en, zh"),
        ({"corpus": "a.jsonl", "min_rating": 6}, r"min_rating must be between 1 and rating_scale \(5\)"),
        ({"corpus": "a.jsonl", "max_samples": 0}, "max_samples must be at least 1 or null"),
        ({"corpus": "a.jsonl", "train": {"max_length": 200}}, "prompt_tokens_reserved .384. leaves no room"),
        ({"corpus": "a.jsonl", "long_texts": "cut"}, "long_texts must be one of 'truncate', 'skip'"),
        ({"corpus": "a.jsonl", "shown_word": 3}, "unknown field 'shown_word'"),
    ],
)
def test_backtranslation_config_errors_say_what_is_wrong(fields, message):
    with pytest.raises(UserError, match=message):
        from_dict(BacktranslationConfig, fields)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"languages": []}, "languages must not be empty"),
        ({"min_sections": 5, "max_sections": 3}, "need 1 <= min_sections <= max_sections"),
        ({"plan_attempts": 0}, "plan_attempts must be at least 1"),
        ({"self_instruct": {"instructions": 3}}, "unknown field 'instructions'"),
    ],
)
def test_imitation_config_errors_say_what_is_wrong(fields, message):
    with pytest.raises(UserError, match=message):
        from_dict(ImitationConfig, fields)
