"""Arena env: API, determinism, camera, frame/state agreement, physics, speed."""

from __future__ import annotations

import time
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from worldloom.envs import ARENA_GYM_ID, make
from worldloom.envs.arena import AGENT_FILL, BALL_COLORS, WALL_PX, ArenaConfig, ArenaEnv

RIGHT, NOOP = 4, 0


def test_check_env_and_registry():
    env = make("arena")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no spec" note about alternative render modes
        check_env(env.unwrapped)
    assert env.observation_space.shape == (64, 64, 3) and env.action_space.n == 5
    assert env.action_spec.names == ("noop", "up", "down", "left", "right")
    genv = gymnasium.make(ARENA_GYM_ID, n_balls=2)
    obs, info = genv.reset(seed=0)
    assert obs.shape == (64, 64, 3) and info["state"]["ball_pos"].shape == (2, 2)
    with pytest.raises(ValueError, match="known"):
        make("nope")


def test_deterministic_under_seed():
    a, b = make("arena"), make("arena")
    oa, ia = a.reset(seed=3)
    ob, ib = b.reset(seed=3)
    actions = np.random.default_rng(0).integers(0, 5, size=200)
    for act in actions:
        oa, *_, ia = a.step(int(act))
        ob, *_, ib = b.step(int(act))
        np.testing.assert_array_equal(oa, ob)
    for k in ia["state"]:
        np.testing.assert_array_equal(ia["state"][k], ib["state"][k])
    oc, _ = make("arena").reset(seed=4)
    assert not np.array_equal(a.reset(seed=3)[0], oc)  # another seed, another layout


def test_camera_snaps_and_frame_matches_state():
    env = make("arena")
    obs, info = env.reset(seed=1)
    env.unwrapped.place(agent_pos=(100.0, 128.0), agent_vel=(0.0, 0.0))
    cam0 = env.unwrapped.get_state()["camera"].copy()
    for _ in range(4):
        obs, *_, info = env.step(RIGHT)
    st = info["state"]
    shift = st["camera"] - cam0
    assert shift[0] > 0 and shift[0] % 4 == 0 and shift[1] == 0
    assert np.all(st["camera"] % 4 == 0)
    assert np.all(np.abs(st["camera"] + 32 - st["agent_pos"]) <= 2.0 + 1e-4)
    np.testing.assert_allclose(st["agent_pos_view"], st["agent_pos"] - st["camera"])
    np.testing.assert_allclose(st["agent_pos_units"] * st["px_per_unit"], st["agent_pos"], rtol=1e-6)
    ax, ay = np.floor(st["agent_pos_view"]).astype(int)
    assert tuple(obs[ay, ax]) == AGENT_FILL
    # Every ball whose centre is in view is drawn there in its own colour.
    seen = 0
    for _ in range(300):
        obs, *_, info = env.step(NOOP)
        for i, (x, y) in enumerate(np.floor(info["state"]["ball_pos_view"]).astype(int)):
            if 0 <= x < 64 and 0 <= y < 64:
                assert tuple(obs[y, x]) == BALL_COLORS[i % len(BALL_COLORS)]
                seen += 1
    assert seen > 0
    np.testing.assert_array_equal(env.render(), obs)


def test_balls_bounce_and_stay_inside():
    cfg = ArenaConfig()
    env = ArenaEnv(cfg)
    _, info = env.reset(seed=2)
    v0 = info["state"]["ball_vel"].copy()
    flipped = np.zeros_like(v0, dtype=bool)
    lo, hi = WALL_PX + cfg.ball_radius - 1.0, cfg.world_size - WALL_PX - cfg.ball_radius + 1.0
    for _ in range(300):
        _, _, term, trunc, info = env.step(NOOP)
        st = info["state"]
        assert not term and not trunc
        assert np.all(np.linalg.norm(st["ball_vel"], axis=1) <= cfg.max_ball_speed + 1e-3)
        assert np.all((st["ball_pos"] >= lo) & (st["ball_pos"] <= hi))
        flipped |= np.sign(st["ball_vel"]) == -np.sign(v0)
    assert flipped.any()
    # No friction or damping: speeds are kept (up to the clamp) through collisions.
    assert np.linalg.norm(st["ball_vel"], axis=1).min() > 0.3


def test_agent_pushes_ball():
    env = ArenaEnv(ArenaConfig(n_balls=2))
    env.reset(seed=0)
    env.place(
        agent_pos=(100.0, 128.0), agent_vel=(0.0, 0.0),
        ball_pos=np.array([[113.0, 128.0], [30.0, 30.0]]), ball_vel=np.zeros((2, 2)),
    )
    for _ in range(6):
        _, *_, info = env.step(RIGHT)
    st = info["state"]
    assert st["ball_vel"][0, 0] > 2.0 and abs(st["ball_vel"][0, 1]) < 0.5  # pushed along +x
    assert st["ball_pos"][0, 0] > 120.0
    np.testing.assert_allclose(st["ball_vel"][1], 0.0, atol=1e-6)  # the far ball is untouched


def test_control_laws():
    """'accel' reaches full speed and stops in two steps on a 2 px lattice, so the camera's snaps
    are set by what frames show; 'smooth' (the first worlds) approaches full speed geometrically."""
    env = ArenaEnv(ArenaConfig(n_balls=0))
    env.reset(seed=0)
    env.place(agent_pos=(100.5, 128.5), agent_vel=(0.0, 0.0))
    vx = [env.step(a)[4]["state"]["agent_vel"][0] for a in [RIGHT] * 4 + [NOOP] * 3]
    np.testing.assert_allclose(vx, [2, 4, 4, 4, 2, 0, 0], atol=1e-6)
    st = env.get_state()
    np.testing.assert_allclose(st["agent_pos"], (100.5 + 16, 128.5), atol=1e-6)  # 2+4+4+4+2+0+0 px
    # Turning right -> up changes each axis by at most accel: a diagonal step between.
    env.place(agent_vel=(4.0, 0.0))
    up = 1
    np.testing.assert_allclose([env.step(up)[4]["state"]["agent_vel"] for _ in range(2)], [[2, -2], [0, -4]], atol=1e-6)
    # Held from rest: under 'accel' the step where the camera lags (if any) is decided by the drawn pixel
    # (the frame shows it); under 'smooth' two starts drawn at the same pixel lag at different steps.
    def lag_steps(law: str) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for f in np.arange(0, 4, 0.25):
            e = ArenaEnv(ArenaConfig(n_balls=0, control=law))
            e.reset(seed=0)
            e.place(agent_pos=(40 + f, 128.5), agent_vel=(0.0, 0.0))
            cams = [e.get_state()["camera"][0]] + [e.step(RIGHT)[4]["state"]["camera"][0] for _ in range(12)]
            d = np.diff(cams)
            assert set(d[5:].tolist()) == {4}  # full speed: one cell a step
            out.setdefault(int(np.floor(40 + f)), set()).add(int(np.flatnonzero(d == 0).max(initial=-1)))
        return out

    assert all(len(v) == 1 for v in lag_steps("accel").values())
    assert any(len(v) > 1 for v in lag_steps("smooth").values())

    smooth = ArenaEnv(ArenaConfig(n_balls=0, control="smooth"))
    smooth.reset(seed=0)
    smooth.place(agent_pos=(100.5, 128.5), agent_vel=(0.0, 0.0))
    vx = [smooth.step(RIGHT)[4]["state"]["agent_vel"][0] for _ in range(3)]
    np.testing.assert_allclose(vx, [2, 3, 3.5], atol=1e-6)
    with pytest.raises(ValueError, match="control"):
        ArenaConfig(control="teleport")


def test_truncation_and_invalid_action():
    env = ArenaEnv(ArenaConfig(max_steps=3))
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(3)] == [False, False, True]
    with pytest.raises(ValueError, match="7"):
        env.step(7)
    with pytest.raises(ValueError, match="-1"):
        env.step(-1)


def test_render_speed():
    env = make("arena")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 5, size=1000).tolist()
    t = time.perf_counter()
    for a in actions:
        env.step(a)
    assert time.perf_counter() - t < 3.0  # measured ~6,000 steps/s on one core


def test_still_camera_option():
    env = ArenaEnv(world_size=64, follow=False, n_landmarks=3)
    _, info = env.reset(seed=1)
    cams = [info["state"]["camera"].copy()] + [env.step(4)[4]["state"]["camera"].copy() for _ in range(6)]
    assert all((c == 0).all() for c in cams)  # centred on a world the size of the view: the whole world, still
    assert len(info["state"]["landmark_pos"]) == 3 and info["state"]["ball_color"].shape == (4, 3)


def test_initial_ball_speed_range():
    env = ArenaEnv(ArenaConfig(world_size=128, n_balls=6, n_landmarks=8, ball_speed_min=2.0, ball_speed_max=4.0,
                               max_ball_speed=6.0))
    speeds = []
    for seed in range(20):
        _, info = env.reset(seed=seed)
        speeds += list(np.linalg.norm(info["state"]["ball_vel"], axis=1))
    assert 2.0 <= min(speeds) and max(speeds) <= 4.0 and max(speeds) - min(speeds) > 1.0
    with pytest.raises(ValueError, match="ball_speed_min <= ball_speed_max"):
        ArenaConfig(ball_speed_min=1.0, ball_speed_max=0.8)
    with pytest.raises(ValueError, match="<= max_ball_speed"):
        ArenaConfig(ball_speed_max=3.5)


def test_plain_floor_keeps_the_layout() -> None:
    """plain_floor: one flat floor colour, and the same layout as the textured world of that seed."""
    kw = {"world_size": 64, "follow": False, "n_landmarks": 2, "n_balls": 2}
    tex, plain = make("arena", **kw), make("arena", plain_floor=True, **kw)
    ft, it = tex.reset(seed=5)
    fp, ip = plain.reset(seed=5)
    for k in ("ball_pos", "agent_pos", "landmark_pos"):
        assert np.array_equal(it["state"][k], ip["state"][k]), k
    colours = lambda env: len(np.unique(env.unwrapped._bg.reshape(-1, 3), axis=0))  # noqa: E731
    assert colours(plain) <= 6 < 100 < colours(tex)  # floor, outside, walls, 2 landmarks (+ edge) vs a colour field


def test_smooth_balls_draw_sub_pixel_motion() -> None:
    """smooth_balls: a ball's colour mass is its disc's area wherever it sits, and a 0.3 px move changes the
    frame (hard-edged sprites at floor(p) change nothing until the move crosses a pixel)."""
    kw = {"world_size": 64, "follow": False, "n_landmarks": 0, "n_balls": 1, "plain_floor": True}
    env = make("arena", smooth_balls=True, **kw).unwrapped
    hard = make("arena", **kw).unwrapped
    _, info = env.reset(seed=2)
    hard.reset(seed=2)
    floor = env.place(ball_pos=np.array([[-500.0, -500.0]])).astype(float)  # the ball out of the world
    agent = info["state"]["agent_pos"]
    p = agent + np.array([0.0, 18.0]) if agent[1] < 32 else agent - np.array([0.0, 18.0])
    p = np.floor(p) + 0.35  # a ball clear of the agent, off the pixel grid
    color = np.asarray(BALL_COLORS[0], float)

    def mass(frame: np.ndarray) -> float:  # ball-coloured share per pixel, summed: its drawn area
        d = frame.astype(float) - floor
        return float((d @ (color - floor.mean((0, 1)))).sum() / ((color - floor.mean((0, 1))) ** 2).sum())

    a, b = env.place(agent_pos=agent, ball_pos=p[None]), env.place(agent_pos=agent, ball_pos=(p + [0.3, 0.0])[None])
    r = env.cfg.ball_radius
    assert mass(a) == pytest.approx(np.pi * r * r, rel=0.05) and mass(b) == pytest.approx(mass(a), rel=0.02)
    assert np.abs(a.astype(int) - b).sum() > 0
    ha, hb = hard.place(agent_pos=agent, ball_pos=p[None]), hard.place(agent_pos=agent, ball_pos=(p + [0.3, 0.0])[None])
    assert np.array_equal(ha, hb)
