"""The memory estimate of `worldloom doctor` against the real peak of a training step on this CPU."""

import ctypes
import json

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from worldloom.cli import main
from worldloom.models.dit import CausalDiT, DynamicsConfig
from worldloom.training.footprint import estimate


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                               "uordblks", "fordblks", "keepcost")]


def _allocated_bytes_fn():
    """glibc's count of bytes in use (heap + mmapped chunks): what the process has allocated, not RSS."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        pytest.skip("needs glibc >= 2.33 (mallinfo2) to read the allocator's live bytes")

    def live() -> int:
        m = libc.mallinfo2()
        return m.uordblks + m.hblkhd

    return live


class _PeakAfterEachOp(TorchDispatchMode):
    def __init__(self, live) -> None:
        super().__init__()
        self.live, self.peak = live, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, self.live())
        return out


@pytest.mark.parametrize("checkpointing", [False, True])
def test_estimate_matches_the_real_peak_of_a_training_step(checkpointing: bool) -> None:
    """Activations, gradients and AdamW state from the meta-device estimate within 20 % of what the allocator
    really holds at its peak over one forward, backward and optimizer step (64 tokens a frame, 2 streams)."""
    live = _allocated_bytes_fn()
    torch.set_num_threads(1)
    cfg = DynamicsConfig(latent_channels=8, latent_size=16, patch=2, dim=128, depth=4, heads=4, max_frames=8, prev_halo=1,
                         conv=3, pred="delta")
    B, T = 4, 8
    est = estimate(cfg, B, T, precision="fp32", checkpointing=checkpointing)
    torch.manual_seed(0)
    dit = CausalDiT(cfg)
    dit.set_checkpointing(checkpointing)
    opt = torch.optim.AdamW(dit.parameters(), lr=1e-4)
    x, t, a = torch.randn(B, T, 8, 16, 16), torch.rand(B, T), torch.zeros(B, T, dtype=torch.long)
    base = live()
    mode = _PeakAfterEachOp(live)
    with mode:
        dit(x, t, a, ctx=x, ctx_t=t).float().square().mean().backward()
        opt.step()
    measured = mode.peak - base
    predicted = est.activations + est.grads + est.optimizer  # the weights (and the EMA) exist before the step
    assert measured > 50e6  # activations dominate: the comparison is about them
    assert abs(predicted - measured) / measured < 0.2, (predicted, measured)
    assert est.params == sum(p.numel() for p in dit.parameters())


def test_checkpointing_and_fsdp_shrink_the_estimate_as_they_should() -> None:
    cfg = DynamicsConfig(latent_channels=8, latent_size=16, patch=2, dim=64, depth=4, heads=2, max_frames=8)
    plain, ck = estimate(cfg, 2, 8), estimate(cfg, 2, 8, checkpointing=True)
    assert ck.activations < plain.activations / 2
    assert estimate(cfg, 4, 8).activations == pytest.approx(2 * plain.activations, rel=0.02)  # linear in the batch
    ddp, fsdp = estimate(cfg, 2, 8, gpus=4), estimate(cfg, 2, 8, gpus=4, parallel="fsdp")
    assert fsdp.optimizer == -(-ddp.optimizer // 4) and fsdp.activations == ddp.activations
    with pytest.raises(ValueError, match="max_frames"):
        estimate(cfg, 2, 9)


def test_doctor_estimates_every_preset_without_allocating_it(capsys: pytest.CaptureFixture[str]) -> None:
    """The 307 M `gpu` preset is estimated on this machine (meta device); its numbers are the preset's."""
    assert main(["doctor", "--preset", "gpu", "--json", "--batch", "2"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert 290e6 < rep["params"] < 320e6 and rep["tokens_per_frame"] == 256 and rep["frame_px"] == 256
    assert rep["batch_per_device"] == 2 and rep["total"] > rep["activations"] > 0
    assert main(["doctor", "--preset", "gpu-small"]) == 0
    assert "tokens/frame" in capsys.readouterr().out
    assert main(["doctor", "--preset", "gpu", "--frames", "99"]) == 2
    assert "max_frames" in capsys.readouterr().err
