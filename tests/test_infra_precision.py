"""`precision: auto` picks bf16 only where the hardware computes it, as torch reports it."""

import pytest
import torch

from infra.compute import check_precision, use_bf16


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_takes_bf16_on_a_cpu_with_avx512_bf16(cpu_only, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert use_bf16("auto") is True


def test_auto_takes_bf16_on_a_cpu_with_amx_tiles(cpu_only, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert use_bf16("auto") is True


def test_auto_stays_fp32_on_a_cpu_without_native_bf16(cpu_only, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert use_bf16("auto") is False


def test_explicit_precision_overrides_the_hardware(cpu_only, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert use_bf16("fp32") is False
    assert use_bf16("bf16") is True


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be"):
        check_precision("fp16")
