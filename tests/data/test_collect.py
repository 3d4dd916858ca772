"""collect(): real envs into a valid dataset (a Gymnasium env and the built-in arena)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldloom.data import Dataset, collect


def test_collect_cartpole(tmp_path: Path) -> None:
    pytest.importorskip("pygame", reason="CartPole renders with pygame (pip install pygame)")
    out = collect("gym:CartPole-v1", tmp_path / "cp", episodes=2, steps=20, progress=False)
    ds = Dataset.open(out)
    ds.validate()
    m = ds.meta
    assert m["env"] == "gym:CartPole-v1" and m["fps"] == 50 and m["frame_shape"] == [64, 64, 3]
    assert m["policy"]["name"] == "momentum" and m["state_keys"] == []
    assert [e["seed"] for e in m["episodes"]] == [0, 1]
    assert len(ds) == 2
    for ep in ds:
        assert 2 <= ep.len <= 20  # CartPole may fall over before 20 frames
        assert ep.frames.shape == (ep.len, 64, 64, 3) and ep.actions[0] == 0
        assert set(np.unique(ep.actions[1:])) <= {0, 1}
    # refuses to clobber without overwrite
    with pytest.raises(FileExistsError):
        collect("gym:CartPole-v1", out, episodes=1, steps=5, progress=False)


def test_box_env_end_to_end_with_continuous_axes(tmp_path: Path) -> None:
    """A Gymnasium Box env: collect its axis values, train on them, and roll out under chosen values."""
    pytest.importorskip("pygame", reason="Pendulum renders with pygame (pip install pygame)")
    import worldloom
    from worldloom.cli import main

    out = collect("gym:Pendulum-v1", tmp_path / "pend", episodes=2, steps=16, progress=False)
    ds = Dataset.open(out)
    spec = ds.action_spec
    assert spec.names == ("noop",) and [(a.name, a.low, a.high) for a in spec.axes] == [("axis_0", -2.0, 2.0)]
    assert spec.axes[0].keys == (("ArrowLeft", -2.0), ("ArrowRight", 2.0))  # play: held arrows push either way
    ep = ds[0]
    assert ep.axes.shape == (16, 1) and ep.axes[0, 0] == 0.0 and np.all(np.abs(ep.axes) <= 2.0)
    assert np.ptp(ep.axes[1:]) > 0.1 and np.all(ep.actions == 0)  # the smooth walk moves the torque
    assert ds.meta["policy"]["kind"] == "axes"
    d = tmp_path
    assert main(["train", "tokenizer", "--preset", "tiny", "--data", str(out), "--out", str(d / "tok")]) == 0
    assert main(["train", "dynamics", "--preset", "tiny", "--data", str(out), "--tokenizer", str(d / "tok"),
                 "--out", str(d / "wm"), "--train-steps", "2"]) == 0
    model = worldloom.load(d / "wm")
    assert model.dit.cfg.n_axes == 1 and model.action_spec == spec
    sim = worldloom.Simulator(model, steps=1)
    sim.reset(np.array(ep.frames[:4]), np.array(ep.actions[:4]), np.array(ep.axes[:4]))
    assert sim.rollout(np.zeros(3, np.int64), np.array([[2.0], [2.0], [-2.0]])).shape == (3, 64, 64, 3)
    assert main(["eval", "--checkpoint", str(d / "wm"), "--data", str(out), "--episodes", "2", "--horizon", "4",
                 "--context", "4", "--json", "--out", str(d / "eval.json")]) == 0
    assert main(["distill", "--teacher", str(d / "wm"), "--data", str(out), "--out", str(d / "s")]) == 2  # said, not crashed


def test_collect_arena(tmp_path: Path) -> None:
    envs = pytest.importorskip("worldloom.envs.arena", reason="worldloom.envs.arena not available")
    out = collect("arena", tmp_path / "arena", episodes=2, steps=12, seed=5, progress=False)
    ds = Dataset.open(out)
    ds.validate()
    assert ds.meta["env"] == "arena" and ds.frame_shape == (64, 64, 3)
    # frame_size as the env field it set; the control law and ball speeds, whose defaults changed once
    assert ds.meta["env_kwargs"] == {"view": 64, "control": "accel", "ball_speed_min": 0.5, "ball_speed_max": 1.5,
                                     "max_ball_speed": 3.0}
    assert ds.action_spec == envs.ArenaEnv.action_spec
    assert len(ds) == 2 and ds.n_frames == 24
    assert [e["seed"] for e in ds.meta["episodes"]] == [5, 6]
    assert "agent_pos" in ds.state_keys and "camera" in ds.state_keys
    ep = ds[0]
    assert ep.state["agent_pos"].shape == (12, 2) and ep.state["agent_pos"].dtype == np.float32
    # Reproducible: the same seed gives the same episode.
    again = collect("arena", tmp_path / "again", episodes=1, steps=12, seed=5, progress=False)
    np.testing.assert_array_equal(Dataset.open(again)[0].frames, ep.frames)
    np.testing.assert_array_equal(Dataset.open(again)[0].actions, ep.actions)


def test_recorded_env_keeps_the_control_law_it_was_made_in() -> None:
    """A record (checkpoint config or dataset meta) rebuilds its own world: records from before the
    control law (or the ball speeds) were recorded were made in the smooth one (with fast balls), new
    ones say which."""
    from worldloom.data.collect import make_env, make_recorded_env, resolve_env_kwargs

    law = lambda env: env.unwrapped.cfg.control  # noqa: E731
    assert law(make_env("arena")) == "accel"  # today's default for new data
    assert law(make_recorded_env({"env": "arena", "env_kwargs": {"view": 64}})) == "smooth"
    assert law(make_recorded_env({"env": "arena", "env_kwargs": {"view": 64, "control": "accel"}})) == "accel"
    assert make_recorded_env({"env": "arena", "env_kwargs": {"view": 32}}, frame_size=32).observation_space.shape == (32, 32, 3)
    # The ball speeds likewise: new data states today's slow balls, records without them were fast.
    speeds = lambda env: (env.unwrapped.cfg.ball_speed_max, env.unwrapped.cfg.max_ball_speed)  # noqa: E731
    assert speeds(make_env("arena")) == (1.5, 3.0)
    assert speeds(make_recorded_env({"env": "arena", "env_kwargs": {"view": 64, "control": "accel"}})) == (3.0, 6.0)
    recorded = resolve_env_kwargs("arena", 64, {"control": "accel"})
    assert recorded["ball_speed_max"] == 1.5 and speeds(make_recorded_env({"env": "arena", "env_kwargs": recorded})) == (1.5, 3.0)
