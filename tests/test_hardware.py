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


def test_pick_device_resolves_auto_and_refuses_a_device_this_machine_lacks(monkeypatch):
    import pytest

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.pick_device("auto").type in ("cpu", "mps")
    assert hardware.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda:1'.*0 CUDA device"):
        hardware.pick_device("cuda:1")
    with pytest.raises(ValueError, match="'gpu0': expected auto, cpu"):
        hardware.pick_device("gpu0")


def test_a_checkpoints_cpu_precision_becomes_one_the_device_runs(monkeypatch):
    from worldloom.runtime.loading import default_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert default_precision({"precision": "int8"}, cpu) == "int8"
    monkeypatch.setattr(hardware, "bf16_supported", lambda device=None: torch.device(device).type == "cuda")
    assert default_precision({"precision": "int8"}, cuda) == "bf16"  # int8 is a CPU kernel
    monkeypatch.setattr(hardware, "bf16_supported", lambda device=None: False)
    assert default_precision({"precision": "int8"}, cuda) == "fp32"
    assert default_precision({"precision": "bf16"}, cpu) == "fp32"
    assert default_precision({}, cuda) == "fp32"
