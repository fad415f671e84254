"""`precision: auto` picks bf16 only where the hardware computes it, as torch reports it."""

import pytest
import torch

from infra.compute import check_precision, use_bf16


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize(("avx512_bf16", "amx_tiles", "expected"), [
    (True, False, True),
    (False, True, True),
    (False, False, False),
], ids=["avx512_bf16", "amx_tiles", "neither"])
def test_auto_takes_bf16_only_on_a_cpu_with_native_bf16(cpu_only, monkeypatch, avx512_bf16, amx_tiles, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx_tiles)
    assert use_bf16("auto") is expected


def test_explicit_precision_overrides_the_hardware(cpu_only, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert use_bf16("fp32") is False
    assert use_bf16("bf16") is True


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be"):
        check_precision("fp16")
