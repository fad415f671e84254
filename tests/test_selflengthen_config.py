"""The Self-Lengthen configuration: reference defaults, YAML loading, clear errors."""

import pytest

from harness.config import from_dict, load_config
from harness.errors import UserError
from selflengthen.config import SelfLengthenConfig
from selflengthen.lora import TrainConfig


def test_sampling_defaults_follow_the_reference():
    sampling = SelfLengthenConfig().sampling
    assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.repetition_penalty) == (0.7, 0.8, 20, 1.1)
    assert "<|im_end|>" in sampling.stop and "\n\n\n" in sampling.stop


def test_every_field_has_a_help_text():
    import dataclasses

    from selflengthen import config as module

    classes = [
        module.SelfLengthenConfig,
        module.SelfInstructConfig,
        module.GeneratorConfig,
        module.ExtenderConfig,
        module.FilterConfig,
        module.FinalDataConfig,
    ]
    missing = [f"{c.__name__}.{f.name}" for c in classes for f in dataclasses.fields(c) if not f.metadata.get("help")]
    assert missing == []


def test_nested_fields_load_from_a_mapping():
    config = from_dict(
        SelfLengthenConfig, {"extender": {"rounds": 5}, "filters": {"ngram_words": 8}, "train": {"lora_r": 4}}
    )
    assert (config.extender.rounds, config.filters.ngram_words) == (5, 8)
    assert isinstance(config.train, TrainConfig) and config.train.lora_r == 4


def test_a_misspelt_nested_field_fails_with_its_name(tmp_path):
    path = tmp_path / "selflengthen.yaml"
    path.write_text("extender:\n  round: 5\n")
    with pytest.raises(UserError, match="unknown field 'round'"):
        load_config(SelfLengthenConfig, path)


def test_an_unknown_language_is_refused():
    with pytest.raises(UserError, match="languages"):
        from_dict(SelfLengthenConfig, {"languages": ["fr"]})


def test_seed_file_defaults_to_the_data_dir_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFLENGTHEN_DATA_DIR", str(tmp_path))
    assert SelfLengthenConfig().seed_file("zh") == tmp_path / "seed_instructions_zh.jsonl"


def test_seed_file_without_setting_or_field_names_both(monkeypatch):
    monkeypatch.delenv("SELFLENGTHEN_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match="seed_files.en.*SELFLENGTHEN_DATA_DIR"):
        SelfLengthenConfig().seed_file("en")


def test_an_explicit_seed_file_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFLENGTHEN_DATA_DIR", "/elsewhere")
    config = from_dict(SelfLengthenConfig, {"seed_files": {"en": str(tmp_path / "mine.jsonl")}})
    assert config.seed_file("en") == tmp_path / "mine.jsonl"


def test_a_cut_off_outside_zero_to_one_is_refused():
    with pytest.raises(UserError, match="stop_at_fraction"):
        from_dict(SelfLengthenConfig, {"stop_at_fraction": 1.5})


def test_the_cut_off_is_off_by_default():
    assert SelfLengthenConfig().stop_at_fraction is None
