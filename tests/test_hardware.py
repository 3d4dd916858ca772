"""The one CPU set-up and bf16 check (worldloom.hardware) that training, loading, serving and doctor share."""

from __future__ import annotations

from pathlib import Path

import torch

from worldloom import hardware
from worldloom.training.loop import pick_dtype


def test_setup_cpu_sets_threads_and_keeps_the_default_for_zero():
    before = torch.get_num_threads()
    try:
        hardware.setup_cpu(1)
        assert torch.get_num_threads() == 1
        hardware.setup_cpu(0)
        assert torch.get_num_threads() == 1  # 0 leaves it alone
        # denormals flushed: a product in float32's subnormal range comes out 0
        assert (torch.tensor([1e-38]) * torch.tensor([1e-3])).item() == 0.0
    finally:
        torch.set_num_threads(before)


def test_bf16_is_native_only_with_the_cpu_flags(monkeypatch):
    real = Path.read_text

    def cpuinfo(flags: str):
        return lambda self, *a, **k: flags if str(self) == "/proc/cpuinfo" else real(self, *a, **k)

    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(Path, "read_text", cpuinfo("flags : fpu avx2 avx512f"))
    assert not hardware.cpu_has_bf16() and not hardware.bf16_supported("cpu")
    assert pick_dtype("auto", torch.device("cpu")) is None  # emulated bf16 is ~26x slower here: stay fp32
    monkeypatch.setattr(Path, "read_text", cpuinfo("flags : fpu avx512f avx512_bf16"))
    assert hardware.cpu_has_bf16() and hardware.bf16_supported("cpu")
    assert pick_dtype("auto", torch.device("cpu")) is torch.bfloat16
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert not hardware.cpu_has_bf16()
    assert pick_dtype("fp32", torch.device("cpu")) is None and pick_dtype("bf16", torch.device("cpu")) is torch.bfloat16
