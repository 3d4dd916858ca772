"""Memory copy: the placed memory frame lines up with the view, starts closed, and a gate can learn to copy it."""

import pytest
import torch

from worldloom.models.dit import CausalDiT, DynamicsConfig, MemoryFrames
from worldloom.models.mem_copy import GATE_SHIFT, align, newest_only

torch.set_num_threads(1)


def world(C: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(C, size, size, generator=torch.Generator().manual_seed(seed))


def view(w: torch.Tensor, row: int, col: int, n: int = 8) -> torch.Tensor:
    return w[:, row: row + n, col: col + n]


def test_align_places_a_memory_frame_in_the_current_view():
    """A frame seen from a camera 3 cells right and 2 down lands on the cells it shares with the current view,
    the first valid slot wins where two cover a cell, an invalid slot is never used, and whole tokens work."""
    w = world()
    now, mem = view(w, 10, 10), view(w, 12, 13)  # memory camera: 2 rows down, 3 cols right
    patch = 2
    offset = torch.tensor([[[2 / patch, 3 / patch], [0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)  # tokens
    other = view(w, 10, 10) + 100  # would cover everything, but it is second...
    junk = torch.full_like(now, 1e3)  # ...and this slot is invalid
    z = torch.stack([mem, other, junk])[None]  # (1, 3, C, 8, 8)
    base, cover = align(z, offset, torch.tensor([[True, True, False]]), patch)
    assert base.shape == (1, 4, 8, 8) and cover.shape == (1, 1, 8, 8)
    assert torch.equal(base[0, :, 2:, 3:], now[:, 2:, 3:])  # the shared part is the current view exactly
    assert torch.equal(base[0, :, :2], other[:, :2]) and torch.equal(base[0, :, :, :3], other[:, :, :3])
    assert bool((cover == 1).all()) and not bool((base > 500).any())
    base1, cover1 = align(z[:, :1], offset[:, :1], torch.tensor([[True]]), patch)
    assert int(cover1.sum()) == 6 * 5 and bool((base1[0, :, :2] == 0).all())
    far, cover_far = align(z[:, :1], torch.tensor([[[5.0, 0.0]]], dtype=torch.float64), torch.tensor([[True]]), patch)
    assert int(cover_far.sum()) == 0  # 10 cells away: nothing shared


def copy_dit(**kw) -> CausalDiT:
    torch.manual_seed(0)
    cfg = DynamicsConfig(latent_channels=4, latent_size=8, patch=2, dim=32, depth=2, heads=2, n_actions=5, max_frames=8,
                         prev_halo=1, pred="warp", head_conv=8, **kw)
    return CausalDiT(cfg).eval()


def test_a_grown_gate_starts_almost_closed_and_without_memory_changes_nothing():
    plain, grown = copy_dit(), copy_dit(mem_copy=True)
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("mem_copy.") for k in missing)
    B, T = 2, 3
    gen = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(B, T, 4, 8, 8, generator=gen), torch.randn(B, T, 4, 8, 8, generator=gen)
    t, a = torch.full((B, T), 0.7), torch.randint(0, 5, (B, T), generator=gen)
    mem = MemoryFrames(torch.randn(B, 1, 4, 8, 8, generator=gen), torch.zeros(B, 1), torch.full((B, 1), -1.0, dtype=torch.float64),
                       torch.zeros(B, 1, 2, dtype=torch.float64), torch.ones(B, 1, dtype=torch.bool))
    with torch.no_grad():
        assert torch.equal(plain(x, t, a, ctx=ctx, ctx_t=t * 0), grown(x, t, a, ctx=ctx, ctx_t=t * 0))
        p, g = plain(x, t, a, ctx=ctx, ctx_t=t * 0, memory=mem), grown(x, t, a, ctx=ctx, ctx_t=t * 0, memory=mem)
    gate = grown.mem_copy.last_gate
    assert torch.allclose(gate[:, -1], torch.full_like(gate[:, -1], torch.sigmoid(torch.tensor(-GATE_SHIFT)).item()))
    assert bool((gate[:, :-1] == 0).all())  # only the newest frame gets the memory base
    assert torch.equal(p[:, :-1], g[:, :-1]) and 0 < (p - g).abs().max() < 0.05 / 0.7


def test_the_gate_learns_to_copy_a_place_the_window_has_lost():
    """The previous frame is noise, the placed memory frame is the truth: training the gate alone (everything
    else frozen) opens it on the covered cells and brings x0 to the truth, which the window alone cannot."""
    m = copy_dit(mem_copy=True).train()
    for n, p in m.named_parameters():
        p.requires_grad_(n.startswith("mem_copy."))
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=3e-2)
    gen = torch.Generator().manual_seed(2)
    B, T = 8, 2
    from worldloom.diffusion.schedules import x0_from_v

    def batch():
        w = torch.randn(B, 4, 8, 8, generator=gen)
        ctx = torch.randn(B, T, 4, 8, 8, generator=gen)  # a window that shows nothing of the place
        x = torch.randn(B, T, 4, 8, 8, generator=gen)
        mem = MemoryFrames(w[:, None], torch.zeros(B, 1), torch.full((B, 1), -1.0, dtype=torch.float64),
                           torch.zeros(B, 1, 2, dtype=torch.float64), torch.ones(B, 1, dtype=torch.bool))
        return w, ctx, x, mem

    def err(w, ctx, x, mem) -> torch.Tensor:
        t = torch.ones(B, T)
        v = m(x, t, torch.zeros(B, T, dtype=torch.long), ctx=ctx, ctx_t=t * 0, memory=mem)
        return ((x0_from_v(x, v, t[..., None, None, None])[:, -1] - w) ** 2).mean()

    first = float(err(*batch()).detach())
    for _ in range(60):
        loss = err(*batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = float(err(*batch()).detach())
    assert last < 0.2 * first and float(m.mem_copy.last_gate[:, -1].mean()) > 0.8


def test_memory_copy_needs_a_previous_frame_base():
    with pytest.raises(ValueError, match="mem_copy"):
        copy_dit(mem_copy=True, prev_frame=False)


def test_newest_only_puts_the_base_on_the_last_frame():
    base, cover = torch.ones(2, 4, 8, 8), torch.ones(2, 1, 8, 8)
    mb, cv = newest_only(base, cover, 3)
    assert mb.shape == (2, 3, 4, 8, 8) and bool((cv[:, :2] == 0).all()) and bool((cv[:, 2] == 1).all())
