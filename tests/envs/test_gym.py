"""The generic Gymnasium adapter: frames as observations, discrete actions only, env API checks."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from worldloom.actions import ActionSpec
from worldloom.envs.gym import GymFrameEnv, make_gym_env, resize_frame

pytest.importorskip("pygame", reason="Gymnasium's classic-control envs render with pygame (pip install pygame)")


@pytest.mark.filterwarnings("ignore:.*alternative render modes")
def test_cartpole_frames_and_api() -> None:
    env = make_gym_env("gym:CartPole-v1", frame_size=32)
    try:
        assert isinstance(env, GymFrameEnv) and env.unwrapped is env
        assert env.unwrapped.action_spec == ActionSpec.discrete(2)
        assert env.metadata["render_fps"] == 50 and env.render_mode == "rgb_array"
        obs, info = env.reset(seed=0)
        assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8 and "state" not in info
        assert env.observation_space.contains(obs)
        np.testing.assert_array_equal(env.render(), obs)
        moved = obs
        for _ in range(5):
            moved, _, terminated, truncated, info = env.step(1)
        assert not np.array_equal(moved, obs)  # the cart moves: frames carry the dynamics
        obs2, _ = env.reset(seed=0)
        np.testing.assert_array_equal(obs2, obs)  # seeded resets are reproducible
        with pytest.raises(ValueError, match="outside"):
            env.step(2)
        check_env(env, skip_render_check=False)
    finally:
        env.close()


def test_non_discrete_and_unknown_ids_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="not Discrete"):
        make_gym_env("Pendulum-v1")
    with pytest.raises(ValueError, match="gym:NoSuchEnv-v0"):
        make_gym_env("NoSuchEnv-v0")


def test_resize_frame() -> None:
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert resize_frame(wide, 16).shape == (16, 16, 3)
    # centre crop keeps the middle square
    wide[:, :10] = 0
    wide[:, 50:] = 0
    wide[:, 10:50] = 200
    out = resize_frame(wide, 8, center_crop=True)
    assert (out == 200).all()
    # grey and RGBA become RGB; upscaling works; same size is a no-op copy
    assert resize_frame(np.zeros((5, 5), np.uint8), 10).shape == (10, 10, 3)
    assert resize_frame(np.zeros((5, 5, 4), np.uint8), 5).shape == (5, 5, 3)
    np.testing.assert_array_equal(resize_frame(wide[:8, :8], 8), wide[:8, :8])
