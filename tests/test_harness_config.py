"""Typed configs from YAML: wrong names and types fail at load with the field named."""

from dataclasses import dataclass, field

import pytest

from harness.config import from_dict, load_config
from harness.errors import UserError
from harness.scoring.evaluate import EvalConfig


@dataclass
class Inner:
    rate: float = 0.5


@dataclass
class Outer:
    name: str = "x"
    steps: int = 3
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)


def test_unknown_field_is_named():
    with pytest.raises(UserError, match=r"unknown field 'stpes' in Outer"):
        from_dict(Outer, {"stpes": 4})


def test_unknown_nested_field_is_named_with_its_path():
    with pytest.raises(UserError, match=r"unknown field 'rat' in Outer.inner"):
        from_dict(Outer, {"inner": {"rat": 1}})


def test_wrong_type_names_field_and_type():
    with pytest.raises(UserError, match=r"Outer.steps must be an integer, got 'three'"):
        from_dict(Outer, {"steps": "three"})


def test_nested_values_and_int_to_float_load():
    config = from_dict(Outer, {"inner": {"rate": 1}, "tags": ["a"]})
    assert config.inner.rate == 1.0 and isinstance(config.inner.rate, float) and config.tags == ["a"]


def test_malformed_yaml_is_one_line_with_position(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed\ntasks: 3\n")
    with pytest.raises(UserError) as info:
        load_config(EvalConfig, path)
    assert "malformed YAML in" in str(info.value) and "line" in str(info.value)
    assert "\n" not in str(info.value)


def test_eval_config_loads_nested_server_and_sampling(tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text("model: m\nserver: {kind: vllm}\nsampling: {temperature: 0.5, top_k: 20}\n")
    config = load_config(EvalConfig, path)
    assert config.server.kind == "vllm" and config.sampling.top_k == 20 and config.sampling.temperature == 0.5


def test_literal_field_rejects_unknown_choice():
    with pytest.raises(UserError, match=r"server.kind must be one of 'transformers', 'vllm'"):
        from_dict(EvalConfig, {"server": {"kind": "tgi"}})


def test_string_values_expand_environment_variables(monkeypatch):
    monkeypatch.setenv("SL_TEST_DIR", "/data/here")
    assert from_dict(Outer, {"name": "${SL_TEST_DIR}/x.jsonl"}).name == "/data/here/x.jsonl"


def test_unset_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("SL_TEST_UNSET", raising=False)
    with pytest.raises(UserError, match=r"Outer.name uses an unset environment variable: \$SL_TEST_UNSET"):
        from_dict(Outer, {"name": "$SL_TEST_UNSET/x"})


def test_a_section_overlays_its_fields_default_not_the_class_defaults():
    """tiny.yaml's `sampling: {max_tokens: 640, ...}` keeps the reference's stop strings."""
    from selflengthen.config import REFERENCE_STOP, SelfLengthenConfig

    config = from_dict(SelfLengthenConfig, {"sampling": {"max_tokens": 640}})
    assert config.sampling.max_tokens == 640
    assert config.sampling.stop == REFERENCE_STOP
    assert config.sampling.temperature == 0.7


def test_a_section_can_still_clear_a_defaulted_list():
    from selflengthen.config import SelfLengthenConfig

    assert from_dict(SelfLengthenConfig, {"sampling": {"stop": []}}).sampling.stop == []
