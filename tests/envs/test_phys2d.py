"""Phys2D env: API, determinism, id/ood ranges, frame/state agreement, physics against closed forms."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from worldloom.envs import PHYS2D_GYM_ID, make
from worldloom.envs.phys2d import (
    BLUE,
    RADIUS_ID,
    RADIUS_OOD,
    RED,
    SCENARIOS,
    SPEED_ID,
    SPEED_OOD,
    Phys2DConfig,
    Phys2DEnv,
)


def rollout(env: gymnasium.Env, **options: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One whole episode: frames (T, S, S, 3) and state arrays (T, ...)."""
    obs, info = env.reset(**options)
    frames, states, done = [obs], [info["state"]], False
    while not done:
        obs, reward, term, done, info = env.step(0)
        assert reward == 0.0 and not term
        frames.append(obs)
        states.append(info["state"])
    return np.stack(frames), {k: np.stack([s[k] for s in states]) for k in states[0]}


def test_check_env_and_registry():
    env = make("phys2d")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no spec" note about alternative render modes
        check_env(env.unwrapped)
    assert env.observation_space.shape == (64, 64, 3) and env.action_space.n == 1
    assert env.action_spec.names == ("noop",) and env.metadata["render_fps"] == 10
    genv = gymnasium.make(PHYS2D_GYM_ID, scenario="collision", frame_size=32)
    obs, info = genv.reset(seed=0)
    assert obs.shape == (32, 32, 3) and info["state"]["ball_present"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="0 \\('noop'\\)"):
        env.step(1)
    with pytest.raises(ValueError, match="scenario"):
        Phys2DConfig(scenario="pendulum")
    with pytest.raises(ValueError, match="distribution"):
        env.reset(options={"distribution": "far"})
    with pytest.raises(ValueError, match="unknown option"):
        env.reset(options={"speed": 3})


def test_deterministic_under_seed_and_episode_length():
    a, b = make("phys2d"), make("phys2d")
    fa, sa = rollout(a, seed=11)
    fb, sb = rollout(b, seed=11)
    assert len(fa) == 32 and fa.dtype == np.uint8
    np.testing.assert_array_equal(fa, fb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])
    fc, _ = rollout(a, seed=12)
    assert not np.array_equal(fa, fc)
    scenes = {make("phys2d").reset(seed=s)[1]["scenario"] for s in range(30)}
    assert scenes == set(SCENARIOS)  # "mixed" draws every scene


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_id_and_ood_ranges(scenario):
    env = make("phys2d", scenario=scenario)
    n = 2 if scenario == "collision" else 1
    r_lo, r_hi = RADIUS_ID[scenario]
    ood_kinds = set()
    for seed in range(40):
        _, info = env.reset(seed=seed, options={"distribution": "id"})
        st = info["state"]
        r, speed = st["ball_radius"][:n], np.abs(st["ball_vel"][:n, 0])
        assert np.all((r >= r_lo) & (r <= r_hi)) and np.all((speed >= SPEED_ID[0]) & (speed <= SPEED_ID[1]))
        assert st["ood"] == 0 and np.all(st["ball_vel"][:n, 1] == 0)  # horizontal launch, as in PhyWorld
        _, info = env.reset(seed=seed, options={"distribution": "ood"})
        st = info["state"]
        r, speed = st["ball_radius"][:n], np.abs(st["ball_vel"][:n, 0])
        r_out = [any(lo <= x <= hi for lo, hi in RADIUS_OOD[scenario]) for x in r]
        v_out = [any(lo <= x <= hi for lo, hi in SPEED_OOD) for x in speed]
        assert st["ood"] == 1 and (all(r_out) or all(v_out))
        ood_kinds.add((all(r_out), all(v_out)))
        pos = st["ball_pos"][:n]  # every ball starts fully in view
        assert np.all(pos - r[:, None] >= 0) and np.all(pos + r[:, None] <= 10.0)
    assert {(True, False), (False, True)} <= ood_kinds


def test_frames_agree_with_state():
    env = make("phys2d", scenario="collision")
    frames, st = rollout(env, seed=3)
    for t in (0, 3):
        for i, color in enumerate((RED, BLUE)):
            x, y = np.floor(st["ball_pos_px"][t, i]).astype(int)
            assert tuple(frames[t, y, x]) == color
        np.testing.assert_allclose(st["ball_pos_px"][t, :, 0], st["ball_pos"][t, :, 0] * 6.4, rtol=1e-5)
        np.testing.assert_allclose(st["ball_pos_px"][t, :, 1], (10 - st["ball_pos"][t, :, 1]) * 6.4, rtol=1e-5)
    np.testing.assert_allclose(st["ball_mass"][0], np.pi * st["ball_radius"][0] ** 2, rtol=1e-6)
    assert np.all(frames[0][0, 0] == 255)  # white background
    single, sst = rollout(make("phys2d", scenario="uniform"), seed=3)
    assert sst["ball_present"][0].tolist() == [1.0, 0.0]
    assert not ((single[..., 2] > 200) & (single[..., 0] < 50)).any()  # one-ball scenes draw no blue


def test_uniform_motion_is_uniform():
    _, st = rollout(make("phys2d", scenario="uniform"), seed=5)
    v = st["ball_vel"][:, 0]  # (T, 2)
    np.testing.assert_allclose(v - v[0], 0.0, atol=1e-5)
    np.testing.assert_allclose(np.diff(st["ball_pos"][:, 0], axis=0) / 0.1, v[1:], atol=1e-3)


def test_parabola_accelerates_at_g():
    _, st = rollout(make("phys2d", scenario="parabola"), seed=4)
    v = st["ball_vel"][:, 0]  # (T, 2)
    np.testing.assert_allclose(np.diff(v[:, 1]) / 0.1, -2.5, atol=1e-3)  # dv/dt = -g
    np.testing.assert_allclose(v[:, 0] - v[0, 0], 0.0, atol=1e-5)  # no horizontal force
    # Box2D integrates semi-implicitly in 0.01 s steps h: y(t) = y0 - g (t^2 + h t) / 2 exactly.
    y, t = st["ball_pos"][:, 0, 1].astype(np.float64), np.arange(len(v)) * 0.1
    np.testing.assert_allclose(y, y[0] - 1.25 * (t**2 + 0.01 * t), atol=2e-4)


@pytest.mark.parametrize("dist", ["id", "ood"])
def test_collision_conserves_momentum_and_energy(dist):
    env = make("phys2d", scenario="collision", distribution=dist)
    for seed in range(5):
        _, st = rollout(env, seed=seed)
        m, v = st["ball_mass"][0], st["ball_vel"][:, :, 0]  # (2,), (T, 2)
        changed = np.abs(np.diff(v, axis=0)).max(axis=1) > 1e-3
        assert changed.sum() == 1 and 5 <= np.argmax(changed) + 1 <= 32 - 8  # one contact, in the window
        p, ke = v @ m, 0.5 * (v**2) @ m
        np.testing.assert_allclose(p, p[0], atol=1e-4 * (1 + abs(p[0])))
        np.testing.assert_allclose(ke, ke[0], rtol=1e-4)
        m1, m2 = m  # 1-D elastic collision in closed form
        u1, u2 = v[0]
        after = [((m1 - m2) * u1 + 2 * m2 * u2) / (m1 + m2), ((m2 - m1) * u2 + 2 * m1 * u1) / (m1 + m2)]
        np.testing.assert_allclose(v[-1], after, atol=1e-3)
        assert np.all(st["ball_vel"][:, :, 1] == 0)  # head-on: stays on its line


def test_config_override_rules():
    with pytest.raises(ValueError, match="not both"):
        Phys2DEnv(Phys2DConfig(), frames=8)
    env = Phys2DEnv(frames=8, dt=0.05, scenario="uniform")
    frames, _ = rollout(env, seed=0)
    assert len(frames) == 8 and env.metadata["render_fps"] == 20
    with pytest.raises(ValueError, match="frames"):  # too short for a collision to fit
        Phys2DConfig(frames=8)
    with pytest.raises(ValueError, match="frames"):
        env.reset(options={"scenario": "collision"})
