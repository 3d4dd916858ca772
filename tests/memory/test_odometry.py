"""Odometry: kinematics fit from data, the snapped camera it tracks, and place memory posed by actions."""

import numpy as np
import pytest
import torch

from worldloom.memory import Geometry, PlaceMemory
from worldloom.memory.odometry import Odometry, SnapTracker, fit_dataset

DIRS = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]], np.float64)  # noop, up, down, left, right


def accel_walk(actions: np.ndarray, max_speed: float = 4.0, accel: float = 2.0) -> np.ndarray:
    """Positions (T, 2) of an agent whose velocity moves towards max_speed * dir by at most ``accel`` per axis
    (the arena's control law, no walls); ``actions[t]`` moves position t-1 to t."""
    pos, v = [np.zeros(2)], np.zeros(2)
    for a in actions[1:]:
        v = v + np.clip(max_speed * DIRS[a] - v, -accel, accel)
        pos.append(pos[-1] + v)
    return np.stack(pos)


def sticky_actions(rng: np.random.Generator, T: int) -> np.ndarray:
    a = [0]
    for _ in range(T - 1):
        a.append(a[-1] if rng.random() < 0.7 else int(rng.integers(5)))
    return np.array(a)


def test_fit_recovers_the_control_law_and_integrates_a_new_path_exactly():
    rng = np.random.default_rng(0)
    eps = [(a, accel_walk(a)) for a in (sticky_actions(rng, 200) for _ in range(40))]
    odo = Odometry.fit(eps)
    a = sticky_actions(np.random.default_rng(1), 300)
    truth = accel_walk(a)
    last, pos = (0.0, 0.0), np.zeros(2)  # at rest, as the data's episodes start
    for t in range(1, len(a)):
        last = odo.step(last, int(a[t]))
        pos = pos + last
    assert np.abs(pos - truth[-1]).max() < 1e-6


def test_a_pair_never_seen_falls_back_to_the_actions_median():
    odo = Odometry(1.0, {(0, 0, 1): (0.0, -2.0), (0, -2, 1): (0.0, -4.0)}, {1: (0.0, -3.5)})
    assert odo.step((0.0, -2.2), 1) == (0.0, -4.0)  # rounded to the quantum
    assert odo.step((3.0, 0.0), 1) == (0.0, -3.5)  # unseen: the action's median
    assert odo.step((0.0, 0.0), 4) == (0.0, 0.0)  # an action never seen


def test_round_trip_and_clear_errors():
    odo = Odometry(0.5, {(0, 0, 1): (0.0, -2.0), (0, -4, 1): (0.0, -4.0)}, {1: (0.0, -3.0)}, "agent_pos")
    assert Odometry.from_dict(odo.to_dict()) == odo
    with pytest.raises(ValueError, match=r"ckpt/config.json: odometry.steps\['1,x,2'\]"):
        Odometry.from_dict({"quantum": 0.5, "steps": {"1,x,2": [0, 1]}}, where="ckpt/config.json: odometry")
    with pytest.raises(ValueError, match=r"odometry.fallback\['1,2'\]"):
        Odometry.from_dict({"quantum": 0.5, "steps": {}, "fallback": {"1,2": [0, 1]}})
    with pytest.raises(ValueError, match="need"):
        Odometry.from_dict({"quantum": 0, "steps": {}})


def test_snap_tracker_follows_the_true_camera_where_the_frames_miss_steps():
    """The frames' shifts are right but for a few missed scrolls: integrating them drifts, the tracker does not."""
    rng = np.random.default_rng(2)
    eps = [(a, accel_walk(a)) for a in (sticky_actions(rng, 200) for _ in range(40))]
    odo = Odometry.fit(eps)
    a = sticky_actions(np.random.default_rng(3), 200)
    start = 2.0  # the agent's phase in its 4 px camera cell
    cam = 4 * np.floor((accel_walk(a) + start) / 4)  # (T, 2) the true, snapped camera
    seen = np.diff(cam, axis=0)
    moving = np.flatnonzero(np.abs(seen).sum(1) > 0)
    missed = moving[10::8]  # the model draws no scroll on these steps
    seen[missed] = 0
    tr = SnapTracker(odo, 1, 4.0)
    for t in range(1, len(a)):
        pose = tr.update(torch.tensor([a[t]]), torch.tensor(seen[t - 1])[None])
    assert len(missed) >= 3
    assert (pose[0].numpy() == cam[-1] - cam[0]).all()
    assert np.abs(seen.sum(0) - (cam[-1] - cam[0])).max() >= 12  # the frames alone are off by the misses


def test_place_memory_pose_from_actions_needs_an_odometry():
    pol = PlaceMemory(pose="actions")
    with pytest.raises(ValueError, match="odometry"):
        pol.reset(1, Geometry(64, 16, 8))
    with pytest.raises(ValueError, match="pose 'gps' unknown"):
        PlaceMemory(pose="gps")
    auto = PlaceMemory()
    auto.reset(1, Geometry(64, 16, 8))
    assert auto.state()["pose_from"] == "frames"  # no odometry: the frames
    auto.reset(1, Geometry(64, 16, 8, odometry=Odometry(0.5, {(0, 0, 4): (2.0, 0.0)})))
    assert auto.state()["pose_from"] == "actions"


def test_fit_dataset_reads_the_recorded_position(tmp_path):
    from worldloom.data.collect import collect
    from worldloom.data.format import Dataset

    collect("arena", tmp_path / "d", episodes=12, steps=100, seed=0, progress=False)
    odo = fit_dataset(Dataset.open(tmp_path / "d"))
    assert odo is not None and odo.source == "agent_pos"
    for a in range(1, 5):  # from rest a direction moves the agent half speed, then full speed
        assert odo.step((0.0, 0.0), a) == tuple(2.0 * DIRS[a])
        assert odo.step(tuple(2.0 * DIRS[a]), a) == tuple(4.0 * DIRS[a])
