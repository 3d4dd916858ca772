"""Causal DiT: cached == uncached, the future cannot change the past, masks, rolling cache."""

import pytest
import torch

from worldloom.models.attention import frame_layout, visibility_mask
from worldloom.models.dit import CausalDiT, DynamicsConfig, MemoryFrames
from worldloom.models.mem_copy import align

torch.set_num_threads(1)


# The default head, and the arena recipe's: halo'd previous frame, conv in the MLP, 'delta' head.
# Two stacked previous frames: every stack the cached path builds with ``push`` must equal ``history``'s.
VARIANTS = {"plain": {}, "delta_halo_conv": {"prev_halo": 1, "conv": 3, "pred": "delta"},
            "two_prev": {"prev_halo": 1, "pred": "delta", "prev_frames": 2},
            "conv_head": {"prev_halo": 1, "pred": "delta", "head_conv": 8},
            "warp": {"prev_halo": 1, "conv": 3, "pred": "warp"},
            "warp_refined": {"prev_halo": 1, "pred": "warp", "head_conv": 8, "prev_frames": 2},
            "warp_snapped": {"prev_halo": 1, "pred": "warp", "head_conv": 8, "prev_frames": 2, "flow_snap": 0.5},
            "warp_mem_copy": {"prev_halo": 1, "pred": "warp", "head_conv": 8, "prev_frames": 2, "mem_copy": True}}


def tiny(depth: int = 2, max_frames: int = 8, **kw) -> CausalDiT:
    torch.manual_seed(0)
    cfg = DynamicsConfig(latent_channels=4, latent_size=8, patch=2, dim=32, depth=depth, heads=2, n_actions=5,
                         max_frames=max_frames, **kw)
    m = CausalDiT(cfg).eval()
    # adaLN-Zero starts as the identity; randomise so the test exercises every path.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def test_visibility_mask_rules():
    f, s = frame_layout(3, 2, 2)
    m = visibility_mask(f, s)
    # noisy frame 2 (stream 1) sees clean frames 0, 1 and itself, not clean frame 2 nor noisy frame 1
    q = 2 * 3 * 2 - 1
    seen = {(int(f[k]), int(s[k])) for k in range(len(f)) if m[q, k]}
    assert seen == {(0, 0), (1, 0), (2, 1)}
    f1, s1 = frame_layout(3, 2, 1)
    m1 = visibility_mask(f1, s1)
    assert torch.equal(m1, f1[None, :] <= f1[:, None])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("window", [8, 7])
def test_cached_equals_uncached(window, variant):
    m = tiny(**VARIANTS[variant])
    B, T, C, h = 2, 6, 4, 8
    gen = torch.Generator().manual_seed(1)
    ctx = torch.randn(B, T, C, h, h, generator=gen)
    acts = torch.randint(0, 5, (B, T), generator=gen)
    ctx_t = torch.rand(B, T, generator=gen) * 0.2
    x_new = torch.randn(B, C, h, h, generator=gen)
    t_new = torch.full((B,), 0.7)
    with torch.no_grad():
        cache, stack = m.new_cache(B, window=window), None
        for i in range(T - 1):
            m.step(ctx[:, i], ctx_t[:, i], acts[:, i], cache, commit=True, prev=stack)
            stack = m.push(stack, ctx[:, i])
        v_cached = m.step(x_new, t_new, acts[:, T - 1], cache, prev=stack)
        # uncached, one stream: frames 0..T-2 are the context, frame T-1 the noisy target
        x = torch.cat([ctx[:, : T - 1], x_new[:, None]], 1)
        t = torch.cat([ctx_t[:, : T - 1], t_new[:, None]], 1)
        v_df = m(x, t, acts)[:, -1]
        # uncached, two streams
        v_two = m(x, t, acts, ctx=ctx, ctx_t=ctx_t)[:, -1]
    assert (v_cached - v_df).abs().max() <= 1e-4
    assert (v_cached - v_two).abs().max() <= 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_future_cannot_change_past(variant):
    m = tiny(**VARIANTS[variant])
    B, T = 1, 6
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(B, T, 4, 8, 8, generator=gen)
    t = torch.rand(B, T, generator=gen)
    a = torch.randint(0, 5, (B, T), generator=gen)
    with torch.no_grad():
        ref = m(x, t, a, ctx=x, ctx_t=t * 0)
        for k in range(T - 1):
            x2, a2 = x.clone(), a.clone()
            x2[:, k + 1 :] = torch.randn_like(x2[:, k + 1 :])
            a2[:, k + 1 :] = (a2[:, k + 1 :] + 1) % 5
            out = m(x2, t, a2, ctx=x2, ctx_t=t * 0)
            assert torch.equal(out[:, : k + 1], ref[:, : k + 1])
            out1 = m(x2, t, a2)
            assert torch.equal(out1[:, : k + 1], m(x, t, a)[:, : k + 1])


def test_rolling_window_matches_sliding_window_mask():
    """Past the window, the cached step equals an uncached pass with a sliding-window mask."""
    m = tiny(max_frames=9)
    B, W, n = 1, 4, 9
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(B, n, 4, 8, 8, generator=gen)
    a = torch.randint(0, 5, (B, n), generator=gen)
    t0 = torch.zeros(B)
    with torch.no_grad():
        cache = m.new_cache(B, window=W)
        for i in range(n - 1):
            m.step(z[:, i], t0, a[:, i], cache, commit=True, prev=z[:, i - 1] if i else None)
        v = m.step(z[:, n - 1], torch.full((B,), 0.5), a[:, n - 1], cache, prev=z[:, n - 2])
        tt = torch.zeros(B, n)
        tt[:, -1] = 0.5
        ref = m(z, tt, a, window=W)[:, -1]
    assert (v - ref).abs().max() <= 1e-4
    assert cache.n_frames == n - 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_memory_frames_cached_equal_uncached(variant):
    """Memory frames encoded once at the origin and placed by rotation give the uncached pass's numbers,
    which encodes them in place; an invalid slot is ignored; committed frames never see memory."""
    m = tiny(**VARIANTS[variant])
    B, T, W, M = 2, 5, 4, 3
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(B, T, 4, 8, 8, generator=gen)
    a = torch.randint(0, 5, (B, T), generator=gen)
    mem_z = torch.randn(B, M, 4, 8, 8, generator=gen)
    offset = torch.randn(B, M, 2, generator=gen, dtype=torch.float64) * 1.5  # fractional token shifts
    valid = torch.tensor([[True, False, True], [True, True, False]])
    x_new, t_new = torch.randn(B, 4, 8, 8, generator=gen), torch.full((B,), 0.6)
    with torch.no_grad():
        cache, stack = m.new_cache(B, window=W, mem=M), None
        k, v = m.encode_memory(mem_z, torch.zeros(B, M))
        for i in range(T - 1):
            m.step(z[:, i], torch.zeros(B), a[:, i], cache, commit=True, prev=stack)
            stack = m.push(stack, z[:, i])
        before = cache.k.clone()
        time = torch.full((B, M), float(cache.next_pos - W), dtype=torch.float64)
        base = align(mem_z, offset, valid, m.cfg.patch) if m.mem_copy is not None else None
        cache.set_memory(m.place_memory(k, time, offset), v, valid, base)
        v_cached = m.step(x_new, t_new, a[:, T - 1], cache, prev=stack)
        # uncached over the whole clip with the rolling window's mask, memory at the same relative placement
        xs = torch.cat([z[:, : T - 1], x_new[:, None]], 1)
        tt = torch.zeros(B, T)
        tt[:, -1] = 0.6
        mem = MemoryFrames(mem_z, torch.zeros(B, M), torch.full((B, M), float(T - 1 - W), dtype=torch.float64), offset, valid)
        ref = m(xs, tt, a, ctx=xs, ctx_t=tt * 0, window=W, memory=mem)[:, -1]
        no_mem = m(xs, tt, a, ctx=xs, ctx_t=tt * 0, window=W)[:, -1]
        # an invalid slot holds garbage and is not seen
        mem_junk = MemoryFrames(torch.where(valid[..., None, None, None], mem_z, mem_z * 50), mem.t, mem.time, offset, valid)
        ref_junk = m(xs, tt, a, ctx=xs, ctx_t=tt * 0, window=W, memory=mem_junk)[:, -1]
    assert (v_cached - ref).abs().max() <= 1e-4
    assert (ref - no_mem).abs().max() > 1e-3  # the memory frames do reach the output
    assert (ref_junk - ref).abs().max() <= 1e-5
    new = cache.slot() * 16  # the target's own slot; every committed frame's keys stay as they were
    assert torch.equal(before[:, :, :, M * 16 : new], cache.k[:, :, :, M * 16 : new])


def test_committed_frames_do_not_see_memory():
    m = tiny()
    B, W, M = 1, 4, 1
    gen = torch.Generator().manual_seed(6)
    z = torch.randn(B, 3, 4, 8, 8, generator=gen)
    a = torch.randint(0, 5, (B, 3), generator=gen)
    with torch.no_grad():
        outs = []
        for mem_scale in (1.0, 30.0):
            cache = m.new_cache(B, window=W, mem=M)
            k, v = m.encode_memory(torch.randn(B, M, 4, 8, 8, generator=torch.Generator().manual_seed(7)) * mem_scale, torch.zeros(B, M))
            cache.set_memory(m.place_memory(k, torch.zeros(B, M, dtype=torch.float64), torch.zeros(B, M, 2, dtype=torch.float64)), v,
                             torch.ones(B, M, dtype=torch.bool))
            for i in range(3):
                m.step(z[:, i], torch.zeros(B), a[:, i], cache, commit=True, prev=z[:, i - 1] if i else None)
            outs.append(cache.k[:, :, :, M * 16 :].clone())
    assert torch.equal(outs[0], outs[1])


def test_previous_frame_reaches_the_output():
    """Frame stacking: the output for frame i depends on frame i-1 through the stacked input too."""
    m = tiny()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 3, 4, 8, 8, generator=g)
    t, a = torch.full((1, 3), 0.5), torch.zeros(1, 3, dtype=torch.long)
    with torch.no_grad():
        base = m(x, t, a, prev=torch.zeros_like(x))[:, 0]
        other = m(x, t, a, prev=torch.randn(x.shape, generator=g))[:, 0]
    assert not torch.allclose(base, other)  # frame 0 sees no other frame: only the stacked input differs


def test_history_stacks_the_frames_push_builds():
    """history() of a clip (and of its preceding frames) equals the stacks push() builds frame by frame."""
    m = tiny(prev_frames=3)
    z = torch.randn(2, 5, 4, 8, 8, generator=torch.Generator().manual_seed(7))
    hist, stack = m.history(z[:, 2:], before=z[:, :2]), m.push(m.push(None, z[:, 0]), z[:, 1])
    for i in range(3):
        assert torch.equal(hist[:, i], stack)
        stack = m.push(stack, z[:, 2 + i])
    assert torch.equal(m.history(z)[:, 0], torch.zeros(2, 12, 8, 8))  # nothing before the first frame
    assert torch.equal(m.history(z)[:, 2, :4], z[:, 1]) and torch.equal(m.history(z)[:, 2, 4:8], z[:, 0])


def test_second_previous_frame_reaches_the_output():
    """With prev_frames=2 the frame two steps back changes a frame's output through its own input."""
    m = tiny(prev_frames=2, pred="delta")
    g = torch.Generator().manual_seed(8)
    x, prev = torch.randn(1, 1, 4, 8, 8, generator=g), torch.randn(1, 1, 8, 8, 8, generator=g)
    t, a = torch.full((1, 1), 0.5), torch.zeros(1, 1, dtype=torch.long)
    other = prev.clone()
    other[:, :, 4:] = torch.randn(1, 1, 4, 8, 8, generator=g)  # only the older frame differs
    with torch.no_grad():
        assert not torch.allclose(m(x, t, a, prev=prev), m(x, t, a, prev=other))
    with pytest.raises(ValueError, match="prev_frames"):
        tiny(prev_frames=0)


def test_delta_head_starts_as_copy_last_frame():
    """An untrained 'delta' model predicts x0 = previous frame: one Euler step from noise copies it."""
    torch.manual_seed(0)
    m = CausalDiT(DynamicsConfig(latent_channels=4, latent_size=8, patch=2, dim=32, depth=2, heads=2, max_frames=4,
                                 pred="delta", prev_halo=1, conv=3)).eval()
    g = torch.Generator().manual_seed(6)
    prev, x = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    with torch.no_grad():
        cache = m.new_cache(2, window=4)
        m.step(prev, torch.zeros(2), torch.zeros(2, dtype=torch.long), cache, commit=True)
        v = m.step(x, torch.ones(2), torch.ones(2, dtype=torch.long), cache, prev=prev)
    assert torch.allclose(x - v, prev, atol=1e-5)


def test_warp_head_starts_as_copy_last_frame_and_its_flow_moves_the_previous_frame():
    """An untrained 'warp' model copies the previous frame as 'delta' does; a flow of one cell to the right
    (every cell samples its right neighbour) returns the previous frame moved one cell left, and a half cell
    the mean of the two neighbours: the sub-cell move a small object makes."""
    torch.manual_seed(0)
    m = CausalDiT(DynamicsConfig(latent_channels=4, latent_size=8, patch=2, dim=32, depth=2, heads=2, max_frames=4,
                                 pred="warp", prev_halo=1, conv=3)).eval()
    g = torch.Generator().manual_seed(6)
    prev, x = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)

    def x0(flow_dx: float) -> torch.Tensor:
        with torch.no_grad():
            m.out.bias.view(6, 4)[4] = flow_dx  # per token: (C latent + dx, dy) channels x p*p cells
            cache = m.new_cache(2, window=4)
            m.step(prev, torch.zeros(2), torch.zeros(2, dtype=torch.long), cache, commit=True)
            return x - m.step(x, torch.ones(2), torch.ones(2, dtype=torch.long), cache, prev=prev)

    assert torch.allclose(x0(0.0), prev, atol=1e-5)
    assert torch.allclose(x0(1.0)[..., :-1], prev[..., 1:], atol=1e-5)
    assert torch.allclose(x0(1.0)[..., -1], prev[..., -1], atol=1e-5)  # the edge cell repeats
    assert torch.allclose(x0(0.5)[..., :-1], (prev[..., :-1] + prev[..., 1:]) / 2, atol=1e-5)


def test_snapped_flow_scrolls_whole_cells_exactly_where_bilinear_blurs_frame_by_frame():
    """Eight frames of a scroll estimated a tenth of a cell off a whole cell: bilinear resampling fades a one-cell
    landmark to under half its contrast, the snapped flow carries it bit for bit. Flows farther than the tolerance
    from a whole cell (a ball's sub-cell step) are left alone, and the gradient passes straight through."""
    from worldloom.models.layers import flow_warp, snap_flow

    x = torch.zeros(1, 2, 16, 16)
    x[0, :, 8, 8] = 1.0  # a one-cell landmark on an even floor
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0] = 1.1  # the camera moved one cell right; the estimate is 0.1 off
    blurred, sharp = x, x
    for _ in range(8):
        blurred, sharp = flow_warp(blurred, flow), flow_warp(sharp, snap_flow(flow, 0.2))
    assert blurred.max() < 0.5
    assert torch.equal(sharp[0, :, 8, 0], x[0, :, 8, 8])  # moved 8 whole cells left, exactly
    f = torch.tensor([0.1, 0.3, -0.9, 1.45, -2.15], requires_grad=True)
    snapped = snap_flow(f, 0.2)
    assert snapped.tolist() == pytest.approx([0.0, 0.3, -1.0, 1.45, -2.0])
    snapped.sum().backward()
    assert torch.equal(f.grad, torch.ones(5))
    assert snap_flow(f, 0.0) is f and snap_flow(f, 0.5).tolist() == [0.0, 0.0, -1.0, 1.0, -2.0]


def test_flow_warp_matches_the_global_shift_and_checks_shapes():
    """A uniform whole-cell flow is shift.warp's camera move; a flow of the wrong shape is an error naming it."""
    from worldloom.models.layers import flow_warp
    from worldloom.shift import warp

    x = torch.randn(3, 2, 6, 7)
    d = torch.tensor([[1, 0], [-2, 1], [0, -3]])
    flow = d.float()[:, :, None, None].expand(3, 2, 6, 7)
    assert torch.allclose(flow_warp(x, flow), warp(x, d), atol=1e-5)
    with pytest.raises(ValueError, match="flow must be"):
        flow_warp(x, torch.zeros(3, 2, 6, 6))


def test_halo_sees_the_neighbouring_cells():
    """With prev_halo=1, a token's input changes when the previous frame changes one cell outside its patch."""
    m = tiny(prev_halo=1)
    prev = torch.zeros(1, 1, 4, 8, 8)
    moved = prev.clone()
    moved[..., 0, 2] = 1.0  # row 0, col 2: first cell of token (0, 1), the right neighbour of token (0, 0)
    with torch.no_grad():
        a, b = m._tokens(torch.zeros_like(prev), prev), m._tokens(torch.zeros_like(prev), moved)
    changed = (a - b).abs().amax(-1)[0, 0].reshape(4, 4) > 0
    assert changed[0, 0] and changed[0, 1] and not changed[0, 2] and not changed[2, 0]


def test_conv_refiner_starts_as_no_correction_and_sees_neighbouring_cells():
    """A fresh refiner leaves the head's output as it was (a trained model gains one unchanged); trained, a
    previous-frame change in one latent cell reaches up to three cells away (three 3x3 convs) and no further."""
    torch.manual_seed(0)
    cfg = dict(latent_channels=4, latent_size=8, patch=4, dim=32, depth=1, heads=2, max_frames=4, pred="delta")
    plain, refined = CausalDiT(DynamicsConfig(**cfg)).eval(), CausalDiT(DynamicsConfig(**cfg, head_conv=8)).eval()
    refined.load_state_dict(plain.state_dict(), strict=False)
    x, t, a = torch.randn(1, 2, 4, 8, 8), torch.full((1, 2), 0.5), torch.zeros(1, 2, dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(plain(x, t, a), refined(x, t, a))
        for p in refined.refine.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        prev = torch.zeros(1, 2, 4, 8, 8)
        moved = prev.clone()
        moved[0, 1, :, 1, 1] = 1.0  # one cell of the first token's 4x4 patch
        diff = (refined(x, t, a, prev=prev) - refined(x, t, a, prev=moved)).abs().amax(2)[0, 1]  # (8, 8)
    # 3 convs of 3x3: the change reaches 3 cells away at most, across the token border at column 4.
    assert diff[1, 4] > 0 and diff[1, 5] == 0 and diff[7, 7] == 0


def test_bad_head_or_conv_is_an_error():
    with pytest.raises(ValueError, match="pred"):
        CausalDiT(DynamicsConfig(dim=32, heads=2, depth=1, pred="eps"))
    with pytest.raises(ValueError, match="conv"):
        CausalDiT(DynamicsConfig(dim=32, heads=2, depth=1, conv=2))
    with pytest.raises(ValueError, match="head_conv"):
        CausalDiT(DynamicsConfig(dim=32, heads=2, depth=1, head_conv=-1))
    with pytest.raises(ValueError, match="flow_snap"):
        CausalDiT(DynamicsConfig(dim=32, heads=2, depth=1, pred="warp", flow_snap=0.6))
    with pytest.raises(ValueError, match="flow_snap.*pred 'delta'"):  # no flow to snap
        CausalDiT(DynamicsConfig(dim=32, heads=2, depth=1, pred="delta", flow_snap=0.2))


def test_cache_too_big_for_model_is_an_error():
    m = tiny()
    with pytest.raises(ValueError, match="max_frames"):
        m.new_cache(1, window=9)


def test_spare_slot_cache_keeps_the_window():
    """A cache with a spare ring slot (for fused passes) still shows each frame exactly window-1 past frames."""
    from worldloom.models.kv_cache import KVCache

    c = KVCache(1, 1, 1, 2, n_tok=1, window=3, spare=1)
    for n in range(9):
        c.begin(2)
        if c._mask is not None:
            held = [c._frame_in_slot(j, n + 1) for j in range(c._n_keys)]
            for qi, q in enumerate((n, n + 1)):
                seen = sorted(f for f, ok in zip(held, c._mask[qi].tolist()) if ok)
                assert seen == list(range(max(0, q - 2), q + 1))
        c.commit(1)


def test_axes_condition_every_path_alike():
    """Continuous axes: they change the output, and the cached step equals the uncached pass with them."""
    m = tiny(n_axes=2, pred="delta", prev_halo=1)
    B, T = 2, 5
    g = torch.Generator().manual_seed(9)
    z = torch.randn(B, T, 4, 8, 8, generator=g)
    a = torch.zeros(B, T, dtype=torch.long)
    ax = torch.rand(B, T, 2, generator=g) * 2 - 1
    tt = torch.zeros(B, T)
    tt[:, -1] = 0.6
    with torch.no_grad():
        ref = m(z, tt, a, axes=ax)[:, -1]
        assert not torch.allclose(ref, m(z, tt, a, axes=-ax)[:, -1])
        cache, stack = m.new_cache(B, window=8), None
        for i in range(T - 1):
            m.step(z[:, i], tt[:, i], a[:, i], cache, commit=True, prev=stack, axes=ax[:, i])
            stack = m.push(stack, z[:, i])
        v = m.step(z[:, -1], tt[:, -1], a[:, -1], cache, prev=stack, axes=ax[:, -1])
    assert (v - ref).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="takes 2 axis values per frame"):
        m(z, tt, a)
    with pytest.raises(ValueError, match="has no action axes"):
        tiny()(z, tt, a, axes=ax)


def test_axes_start_as_strong_as_a_discrete_action():
    """At init an axis sweep moves the conditioning as much as switching actions does (a weak start was ignored)."""
    torch.manual_seed(0)
    m = CausalDiT(DynamicsConfig(latent_channels=4, latent_size=8, patch=2, dim=64, depth=1, heads=2, n_actions=5,
                                 n_axes=1, max_frames=4))
    t = torch.zeros(1, 1)
    with torch.no_grad():
        sweep = m._cond(t, torch.zeros(1, 1, dtype=torch.long), torch.ones(1, 1, 1)) - \
            m._cond(t, torch.zeros(1, 1, dtype=torch.long), -torch.ones(1, 1, 1))
        switch = m._cond(t, torch.ones(1, 1, dtype=torch.long), torch.zeros(1, 1, 1)) - \
            m._cond(t, torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, 1))
    assert sweep.norm() > 0.5 * switch.norm()
