"""The ``follow`` adapter option: a grid world seen through a camera that follows the agent over its map."""

from __future__ import annotations

import numpy as np
import pytest

from worldloom.envs.gym import adapter_options, make_gym_env

pytest.importorskip("minigrid", reason="the follow camera is tested on MiniGrid (pip install minigrid)")

TILE = 8  # 64 px frame, 8 tiles across


def red(frame: np.ndarray) -> np.ndarray:
    """(H, W) bool: the agent's marker (MiniGrid draws it red)."""
    f = frame.astype(int)
    return (f[..., 0] > 180) & (f[..., 1] < 60) & (f[..., 2] < 60)


def env(**kw):
    return make_gym_env("MiniGrid-FourRooms-v0", frame_size=64, follow=8, max_steps=200, **kw)


def test_the_agent_stays_on_the_centre_tile_and_the_map_scrolls_under_it() -> None:
    e = env()
    try:
        frame, _ = e.reset(seed=3)
        names = e.unwrapped.action_spec.names
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
        ys, xs = np.nonzero(red(frame))
        assert len(ys) and ys.min() >= 4 * TILE and ys.max() < 5 * TILE and xs.min() >= 4 * TILE and xs.max() < 5 * TILE
        moved = 0
        for step in range(60):  # walk forward, turning where a wall stops it
            inner = e.unwrapped.inner.unwrapped
            before, pos = frame, tuple(inner.agent_pos)
            a = "forward" if step % 7 else "left"
            frame, *_ = e.step(names.index(a))
            after = tuple(inner.agent_pos)
            if a == "left" or after == pos:  # a turn or a bump: only the agent's tile changes
                diff = np.nonzero((frame != before).any(-1))
                assert all(4 * TILE <= v < 5 * TILE for v in (*diff[0], *diff[1]))
                continue
            dx, dy = after[0] - pos[0], after[1] - pos[1]  # the map moves the other way, one tile
            keep = np.ones((8, 8), bool)
            keep[4, 4] = keep[4 - dy, 4 - dx] = False  # the agent's tile now, and where the agent was drawn before
            shifted = np.roll(before, (-dy * TILE, -dx * TILE), (0, 1))
            ok = np.kron(keep, np.ones((TILE, TILE), bool))
            rows = slice(0, 64 - TILE) if dy > 0 else slice(TILE, 64) if dy < 0 else slice(0, 64)
            cols = slice(0, 64 - TILE) if dx > 0 else slice(TILE, 64) if dx < 0 else slice(0, 64)
            assert np.array_equal(frame[rows, cols][ok[rows, cols]], shifted[rows, cols][ok[rows, cols]])
            moved += 1
        assert moved >= 5
    finally:
        e.close()


def test_follow_is_recorded_only_where_given_and_checked() -> None:
    assert "follow" not in adapter_options({})
    assert adapter_options({"follow": 8})["follow"] == 8
    for bad in (-1, True, 2.5, "8"):
        with pytest.raises(ValueError, match="follow must be a whole number"):
            adapter_options({"follow": bad})


def test_an_env_without_an_agent_tile_is_refused_by_name() -> None:
    pytest.importorskip("pygame")
    with pytest.raises(ValueError, match=r"gym:CartPole-v1: adapter option 'follow' needs .*agent_pos"):
        make_gym_env("CartPole-v1", follow=4)
