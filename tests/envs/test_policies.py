"""Collection policies: revisits, action coverage, scripted replay, generic envs."""

from __future__ import annotations

import numpy as np
import pytest

from worldloom.envs import make
from worldloom.envs.policies import MomentumWalk, Policy, RandomPolicy, ScriptedPolicy, make_policy


def _revisit_events(positions: np.ndarray, min_age: int = 50, radius: float = 8.0) -> int:
    """Times the agent enters a disc of ``radius`` around a place visited >= ``min_age`` steps before."""
    events, prev = 0, False
    for t in range(min_age, len(positions)):
        hit = bool((np.linalg.norm(positions[: t - min_age + 1] - positions[t], axis=1) < radius).any())
        events += hit and not prev
        prev = hit
    return events


def test_momentum_walk_revisits_and_covers_actions():
    env = make("arena")
    obs, info = env.reset(seed=0)
    pol = MomentumWalk(seed=0)
    assert isinstance(pol, Policy)
    actions, positions, returns = [], [], 0
    for _ in range(1000):
        a = pol.act(obs, info)
        returns += pol.target is not None
        actions.append(a)
        obs, *_, info = env.step(a)
        positions.append(info["state"]["agent_pos"])
    assert set(actions) == {0, 1, 2, 3, 4}
    assert returns > 0  # it did steer back at least once
    assert _revisit_events(np.array(positions)) >= 3
    # Holds actions: far fewer switches than a uniform random policy (~80 %).
    switches = np.mean(np.diff(actions) != 0)
    assert switches < 0.5


def test_momentum_walk_deterministic_and_generic():
    def run(seed: int, n: int) -> list[int]:
        pol = MomentumWalk(n_actions=n, seed=seed)
        return [pol.act(None, {}) for _ in range(300)]

    assert run(1, 5) == run(1, 5)
    assert run(1, 5) != run(2, 5)
    acts = run(0, 3)  # a generic env: no state, any action count
    assert set(acts) == {0, 1, 2}
    assert run(0, 1) == [0] * 300
    pol = MomentumWalk(seed=5)
    first = [pol.act(None, {}) for _ in range(50)]
    pol.reset(5)
    assert [pol.act(None, {}) for _ in range(50)] == first
    assert pol.to_dict()["name"] == "momentum" and pol.to_dict()["p_keep"] == 0.8


def test_scripted_policy_replays_exactly():
    pol = ScriptedPolicy([1, 4, 4, 2])
    assert [pol.act(None, {}) for _ in range(6)] == [1, 4, 4, 2, 1, 4]
    pol.reset(None)
    assert pol.act(None, {}) == 1
    once = ScriptedPolicy([3, 3], loop=False)
    assert [once.act(None, {}) for _ in range(4)] == [3, 3, 0, 0]
    assert once.to_dict() == {"name": "scripted", "actions": [3, 3], "loop": False}
    # Same script on two envs -> identical frames.
    frames = []
    for _ in range(2):
        env, pol = make("arena"), ScriptedPolicy([4, 4, 1, 0, 3])
        obs, info = env.reset(seed=7)
        for _ in range(40):
            obs, *_, info = env.step(pol.act(obs, info))
        frames.append(obs)
    np.testing.assert_array_equal(*frames)


def test_make_policy():
    assert isinstance(make_policy("momentum", 5, seed=0), MomentumWalk)
    rnd = make_policy("random", 4, seed=0)
    assert isinstance(rnd, RandomPolicy) and set(rnd.act(None, {}) for _ in range(200)) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="known"):
        make_policy("greedy", 5)


def test_axis_walk_draws_within_the_chosen_ranges_and_holds_a_fixed_axis():
    from worldloom.envs.policies import AxisWalk

    pol = AxisWalk([-1, 0, 0], [1, 1, 1], seed=3, draw=[None, (0.2, 0.6), (0.0, 0.0)])
    v = np.stack([pol.act(None, {}) for _ in range(400)])
    assert v[:, 0].min() < -0.5 and v[:, 0].max() > 0.5  # the free axis covers its whole range
    assert v[:, 1].min() >= 0.2 and v[:, 1].max() <= 0.6 and np.ptp(v[:, 1]) > 0.2
    assert np.all(v[:, 2] == 0.0)
    assert pol.to_dict()["draw_low"] == [-1.0, 0.2, 0.0] and pol.to_dict()["low"] == [-1.0, 0.0, 0.0]
    rnd = AxisWalk([-1], [1], seed=0, name="random", draw=[(0.5, 0.7)])
    r = np.array([rnd.act(None, {})[0] for _ in range(100)])
    assert r.min() >= 0.5 and r.max() <= 0.7
    with pytest.raises(ValueError, match="must lie inside its range"):
        AxisWalk([-1], [1], draw=[(0.0, 2.0)])
    with pytest.raises(ValueError, match="draw has 2 entries for 1 axes"):
        AxisWalk([-1], [1], draw=[None, None])
