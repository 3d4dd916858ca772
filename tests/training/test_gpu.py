"""CUDA-only checks (``pytest -m gpu``, run by ``make gpu-check``): the scale paths that a CPU cannot run
train, and agree with the paths it can."""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def tiny_dit(**kw):
    from worldloom.models.dit import CausalDiT, DynamicsConfig

    torch.manual_seed(0)
    dit = CausalDiT(DynamicsConfig(latent_channels=4, latent_size=8, patch=2, dim=64, depth=2, heads=2, max_frames=8,
                                   prev_halo=1, conv=3, pred="delta", **kw))
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return dit


def test_flex_and_sdpa_agree_forward_and_backward_on_cuda() -> None:
    dit = tiny_dit().cuda()
    g = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(2, 2, 8, 4, 8, 8, generator=g).cuda().unbind(0)
    t, ctx_t = torch.rand(2, 2, 8, generator=g).cuda().unbind(0)
    a = torch.zeros(2, 8, dtype=torch.long, device="cuda")
    out = []
    for backend in ("sdpa", "flex"):
        dit.zero_grad()
        dit.set_attention(backend)
        y = dit(x, t, a, ctx=ctx, ctx_t=ctx_t)
        y.square().mean().backward()
        out.append((y.detach(), [p.grad.clone() for p in dit.parameters()]))
    assert torch.allclose(out[0][0], out[1][0], atol=1e-4)
    for ga, gb in zip(out[0][1], out[1][1]):
        assert torch.allclose(ga, gb, atol=1e-4, rtol=1e-3)


def test_the_gpu_training_path_trains(tmp_path) -> None:
    """bf16 autocast, fused AdamW, torch.compile, activation checkpointing and flex attention together."""
    from worldloom.training.dynamics import DynamicsRecipe, DynamicsTask
    from worldloom.training.loop import TrainConfig, Trainer

    dit = tiny_dit()
    g = torch.Generator().manual_seed(0)
    lat = [torch.randn(20, 4, 8, 8, generator=g) for _ in range(3)]
    act = [torch.randint(0, 5, (20,), generator=g) for _ in range(3)]
    task = DynamicsTask(dit, lat, act, DynamicsRecipe(clip_len=8))
    cfg = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup=1, device="cuda", precision="auto", fused=True, compile=True,
                      checkpointing=True, attention="auto", log_every=1, ckpt_every=3)
    tr = Trainer(task, cfg, tmp_path, progress=False)
    last = tr.fit()
    assert tr.amp == torch.bfloat16 and torch.isfinite(torch.tensor(last["loss"]))
    resumed = Trainer(DynamicsTask(tiny_dit(), lat, act, DynamicsRecipe(clip_len=8)), cfg, tmp_path, progress=False)
    assert resumed.load_state() and resumed.step == 6


def test_the_simulator_on_cuda_draws_what_it_draws_on_cpu(tiny_ckpt) -> None:
    import numpy as np

    from worldloom.runtime.loading import load
    from worldloom.runtime.simulator import Simulator

    frames = []
    for device in ("cpu", "cuda"):
        sim = Simulator(load(tiny_ckpt, device=device, precision="fp32"), seed=0)
        sim.reset(np.zeros((2, 64, 64, 3), np.uint8), [0, 0])
        frames.append(np.stack([sim.step(a) for a in (1, 2, 3, 4)]).astype(np.float32))
    assert np.abs(frames[0] - frames[1]).mean() < 2.0  # uint8 levels: kernels differ, the picture does not
