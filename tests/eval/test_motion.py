"""View-motion estimation by masked block matching, and the action-following score."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from worldloom.data.collect import collect
from worldloom.data.format import Dataset
from worldloom.envs.registry import priors
from worldloom.eval.metrics import psnr
from worldloom.eval.motion import (
    TRANSITIONS, FollowResult, action_following, box_mask, central_mask, estimate_motion, estimate_shift,
    shift_costs, shift_view, transition_kinds,
)

torch.set_num_threads(1)


def _texture(size: int = 120, seed: int = 0) -> np.ndarray:
    """A random texture with a little spatial correlation, uint8 (size, size, 3)."""
    x = np.random.default_rng(seed).uniform(0, 255, (size + 1, size + 1, 3))
    return ((x[1:, 1:] + x[:-1, 1:] + x[1:, :-1]) / 3).astype(np.uint8)


AGENT = central_mask((64, 64), priors("arena")["agent_half_px"])  # the arena's agent box, from its registration


def _view(world: np.ndarray, cam: tuple[int, int], sprite: bool = True) -> np.ndarray:
    """64x64 view of ``world`` with top-left at cam (x, y), plus a fixed bright sprite in the centre."""
    x, y = cam
    v = world[y : y + 64, x : x + 64].copy()
    if sprite:  # stays put while the background scrolls: would vote for (0, 0) if not masked
        v[26:39, 26:39] = (255, 255, 255)
    return v


@pytest.fixture(scope="module")
def arena_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    path = collect("arena", tmp_path_factory.mktemp("motion") / "ds", episodes=6, steps=60, seed=5, progress=False)
    ds = Dataset.open(path)
    frames = np.stack([np.array(e.frames) for e in ds])  # (6, 60, 64, 64, 3)
    camera = np.stack([np.array(e.state["camera"]) for e in ds])  # (6, 60, 2)
    return frames, camera


@pytest.mark.parametrize("shift", [(4, 0), (-4, 0), (0, 4), (0, -8), (3, -5), (-12, 12), (12, -1), (0, 0)])
def test_recovers_synthetic_shift_with_masked_centre(shift: tuple[int, int]):
    world = _texture()
    prev = _view(world, (30, 30))
    cur = _view(world, (30 + shift[0], 30 + shift[1]))  # camera moved by `shift`
    assert tuple(estimate_shift(prev, cur, AGENT)) == shift
    costs = shift_costs(prev, cur, AGENT)
    assert costs.shape == (25, 25) and costs[shift[1] + 12, shift[0] + 12] == costs.min()


def test_the_agent_box_is_the_envs_prior_and_unmasked_it_outvotes_the_floor():
    """Nothing is masked by default; the arena states its agent box through the registry, and without it the
    centred sprite, which stays put, wins the vote for 'no motion'."""
    assert priors("arena")["agent_half_px"] == 9 and priors("gym:CartPole-v1")["agent_half_px"] == -1
    world = _texture()
    prev, cur = _view(world, (30, 30)), _view(world, (18, 42))
    assert tuple(estimate_shift(prev, cur)) == (0, 0)
    assert tuple(estimate_shift(prev, cur, AGENT)) == (-12, 12)
    assert not central_mask((64, 64), -1).any()


def test_sign_convention_camera_right_is_positive():
    world = _texture(seed=1)
    prev, cur = _view(world, (20, 20), sprite=False), _view(world, (24, 20), sprite=False)
    # camera right by 4 px: the background moved left in the view ...
    np.testing.assert_array_equal(cur[:, :-4], prev[:, 4:])
    # ... and the estimate has the sign of camera[t] - camera[t-1]
    dx, dy = estimate_shift(prev, cur)
    assert (dx, dy) == (4, 0)


def test_batched_masks_and_sequences_agree():
    world = _texture(seed=2)
    cams = [(30, 30), (34, 30), (34, 26), (31, 29), (31, 29)]
    seq = np.stack([_view(world, c) for c in cams])[None]  # (1, 5, 64, 64, 3)
    true = np.diff(np.array(cams), axis=0)[None]
    np.testing.assert_array_equal(estimate_motion(seq, AGENT), true)
    np.testing.assert_array_equal(estimate_shift(seq[:, :-1], seq[:, 1:], AGENT), true)
    # a per-frame mask (central box + a box elsewhere) gives the same answer on this texture
    m = box_mask((64, 64), np.tile([[[5.0, 5.0]]], (1, 5, 1, 1)), half=4, base=AGENT)
    assert m.shape == (1, 5, 64, 64) and m[0, 0, 32, 32] and m[0, 0, 5, 5] and not m[0, 0, 5, 20]
    np.testing.assert_array_equal(estimate_motion(seq, mask=m), true)
    with pytest.raises(ValueError, match="max_shift"):
        estimate_shift(seq[0, 0], seq[0, 1], max_shift=40)


def test_frozen_and_flat_frames_read_as_no_motion(arena_data):
    frames, camera = arena_data
    frozen = np.repeat(frames[:, 3:4], 20, axis=1)  # a model that stopped: the last context frame forever
    r = action_following(frozen, camera[:, 3:24], frames[:, 3], mask=AGENT)
    assert r.moving.any() and (r.est == 0).all()
    assert r.rate("hit") == 0.0 and r.rate("exact") == 0.0 and r.rate("still") == 1.0
    flat = np.full((2, 64, 64, 3), 128, np.uint8)  # nothing to match: ties go to (0, 0)
    assert tuple(estimate_shift(flat[0], flat[1])) == (0, 0)


def test_true_arena_frames_match_camera(arena_data):
    frames, camera = arena_data
    r = action_following(frames, camera, mask=AGENT)  # frames[:, 0] is the predecessor
    assert r.est.shape == (6, 59, 2)
    assert r.moving.mean() > 0.4  # the momentum policy moves most of the time
    exact_all = (r.est == r.true).all(-1).mean()
    assert exact_all >= 0.99, exact_all
    assert r.rate("hit") >= 0.99 and r.rate("exact", 8) >= 0.99 and r.rate("still") >= 0.99
    # the same through the context-frame form
    r2 = action_following(frames[:, 4:], camera[:, 3:], frames[:, 3], mask=AGENT)
    np.testing.assert_array_equal(r2.est, r.est[:, 3:])


def test_hit_rules():
    est = np.array([[[4, 0], [2, 0], [0, 0], [4, 4], [0, 0], [4, 0]]])
    true = np.array([[[4, 0], [4, 0], [4, 0], [4, 0], [0, 0], [0, 0]]])
    r = FollowResult(est, true)
    np.testing.assert_array_equal(r.moving[0], [1, 1, 1, 1, 0, 0])
    # 0 on a moving axis, or motion on a still axis: misses; right sign, wrong size: a hit, not exact
    np.testing.assert_array_equal(r.hit[0] & r.moving[0], [1, 1, 0, 0, 0, 0])
    assert r.rate("hit") == 0.5 and r.rate("exact") == 0.25 and r.rate("still") == 0.5
    assert r.rate("hit", upto=2) == 1.0 and r.rate("hit", upto=2, start=2) == 1.0
    assert np.isnan(r.rate("hit", upto=6, start=5))  # no moving step there
    np.testing.assert_allclose(r.per_step("hit")[:4], [1, 1, 0, 0])
    s = r.summary((2, 32))
    assert s["h1_2"] == 1.0 and s["h1_32"] == 0.5 and s["n_moving_h1_32"] == 4
    with pytest.raises(ValueError, match="true_camera"):
        action_following(np.zeros((1, 3, 64, 64, 3), np.uint8), np.zeros((1, 3, 2)), np.zeros((1, 64, 64, 3), np.uint8))


def test_transitions_split_the_steps_by_what_the_camera_did():
    true = np.array([[[4, 0], [4, 0], [0, 0], [0, 0], [0, 4], [4, 0]]])
    est = np.array([[[4, 0], [0, 0], [0, 0], [4, 0], [0, 4], [0, 0]]])
    kinds = [TRANSITIONS[k] for k in transition_kinds(true, np.zeros((1, 2), np.int64))[0]]
    assert kinds == ["onset", "steady", "stop", "still", "onset", "turn"]
    r = FollowResult(est, true, prev=np.zeros((1, 2), np.int64))
    bt = r.by_transition()
    assert bt["onset"] == {"n": 2, "rate": 1.0} and bt["steady"] == {"n": 1, "rate": 0.0}
    assert bt["stop"] == {"n": 1, "rate": 1.0} and bt["still"] == {"n": 1, "rate": 0.0}  # still = nothing estimated
    assert bt["turn"] == {"n": 1, "rate": 0.0} and sum(v["n"] for v in bt.values()) == 6
    up2 = r.by_transition(2)
    assert up2["onset"]["n"] == 1 and up2["steady"]["n"] == 1 and np.isnan(up2["turn"]["rate"])
    # moving before the first step: the first step continues (steady), not an onset
    assert TRANSITIONS[transition_kinds(true, np.array([[4, 0]]))[0, 0]] == "steady"
    with pytest.raises(ValueError, match="prev"):
        FollowResult(est, true).by_transition()


def test_shift_view_is_the_camera_convention(arena_data):
    f = np.arange(64 * 64 * 3, dtype=np.int64).reshape(64, 64, 3)
    out = shift_view(f, np.array([4, -8]))
    np.testing.assert_array_equal(out[8:, :-4], f[:-8, 4:])  # out[y, x] = f[y + dy, x + dx]
    np.testing.assert_array_equal(out[:8, :-4], np.broadcast_to(f[0, 4:], (8, 60, 3)))  # edge repeated
    np.testing.assert_array_equal(shift_view(f, np.zeros(2)), f)
    keep = AGENT
    np.testing.assert_array_equal(shift_view(f, np.array([4, -8]), keep)[keep], f[keep])
    # true arena frames: the previous frame moved by the true camera step, the agent kept in the
    # centre, matches far better than unmoved (measured: 26.2 vs 21.5 dB on moving steps)
    frames, camera = arena_data
    d = camera[:, 1:] - camera[:, :-1]  # (E, T-1, 2)
    moved = (d != 0).any(-1)
    shifted = shift_view(frames[:, :-1], d, keep)
    assert shifted.shape == frames[:, :-1].shape and moved.sum() > 20
    assert psnr(shifted, frames[:, 1:])[moved].mean() > psnr(frames[:, :-1], frames[:, 1:])[moved].mean() + 3


def test_speed_50_by_32_pairs():
    frames = np.random.default_rng(0).integers(0, 256, (50, 33, 64, 64, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    est = estimate_motion(frames)
    dt = time.perf_counter() - t0
    assert est.shape == (50, 32, 2)
    assert dt < 10.0, f"{dt:.2f} s for 1600 pairs"  # ~0.6 s measured on one busy core
