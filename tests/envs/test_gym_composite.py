"""Composite actions from Gymnasium: a Tuple or Dict of one Discrete and one Box becomes an action id plus
continuous axes, collected as both, with play keys for both and a --keys override for each."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from worldloom.envs.gym import make_gym_env


class Pointer(gymnasium.Env):
    """A dot moved by a 2-axis Box (a mouse delta) and coloured by a Discrete (buttons): keys plus mouse."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    action_names = ["none", "click", "drag"]

    def __init__(self, render_mode=None, layout="tuple"):
        self.render_mode, self.layout = render_mode, layout
        move, button = spaces.Box(-2.0, 2.0, (2,), np.float32), spaces.Discrete(3)
        self.action_space = (spaces.Tuple((move, button)) if layout == "tuple"
                             else spaces.Dict({"button": button, "move": move}))
        self.observation_space = spaces.Box(0.0, 16.0, (2,), np.float32)
        self.received: list = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.button = np.array([8.0, 8.0]), 0
        return self.pos.astype(np.float32), {}

    def step(self, action):
        self.received.append(action)
        move, button = (action[0], action[1]) if self.layout == "tuple" else (action["move"], action["button"])
        self.pos = np.clip(self.pos + np.asarray(move, np.float64), 1, 14)
        self.button = int(button)
        return self.pos.astype(np.float32), 0.0, False, False, {}

    def render(self):
        img = np.zeros((16, 16, 3), np.uint8)
        x, y = np.rint(self.pos).astype(int)
        img[y - 1 : y + 2, x - 1 : x + 2] = [(255, 255, 255), (255, 0, 0), (0, 255, 0)][self.button]
        return img


@pytest.fixture
def registered():
    for layout in ("tuple", "dict"):
        gymnasium.register(f"WorldloomPointer{layout.title()}-v0", entry_point=Pointer, kwargs={"layout": layout})
    yield
    for layout in ("tuple", "dict"):
        gymnasium.registry.pop(f"WorldloomPointer{layout.title()}-v0", None)


@pytest.mark.parametrize("layout", ["tuple", "dict"])
def test_a_discrete_and_a_box_make_one_composite_action(registered, layout) -> None:
    env = make_gym_env(f"gym:WorldloomPointer{layout.title()}-v0", frame_size=16, axis_names=["dx", "dy"])
    try:
        spec = env.unwrapped.action_spec
        assert spec.names == ("none", "click", "drag") and [(a.name, a.low, a.high) for a in spec.axes] == [
            ("dx", -2.0, 2.0), ("dy", -2.0, 2.0)]
        assert spec.axes[0].keys == (("ArrowLeft", -2.0), ("ArrowRight", 2.0))
        env.reset(seed=0)
        obs, *_ = env.step((2, [1.5, -1.0]))
        inner = env.unwrapped.inner.unwrapped
        got = inner.received[-1]
        move, button = (got[0], got[1]) if layout == "tuple" else (got["move"], got["button"])
        assert int(button) == 2 and np.allclose(move, [1.5, -1.0])  # put back in the env's own layout
        assert (obs[7, 10] == (0, 255, 0)).all() and (obs[8, 8] == 0).all()  # the dot moved by the axes, coloured by the id
        with pytest.raises(ValueError, match=r"action 3: .*a pair \(action id, \[axis values\]\)"):
            env.step(3)
        with pytest.raises(ValueError, match="action id 3 outside 0..2"):
            env.step((3, [0.0, 0.0]))
        with pytest.raises(ValueError, match="axis 'dy' value 5.0 at index"):
            env.step((0, [0.0, 5.0]))
    finally:
        env.close()


def test_a_single_id_beside_a_box_takes_the_axis_values_alone() -> None:
    from worldloom.envs.gym import GymFrameEnv

    class One(Pointer):
        action_names = ["none"]

        def __init__(self):
            super().__init__("rgb_array")
            self.action_space = spaces.Tuple((spaces.Box(-2.0, 2.0, (2,), np.float32), spaces.Discrete(1)))

    env = GymFrameEnv(One(), frame_size=16, env_id="one")
    spec = env.action_spec
    assert spec.n == 1 and spec.n_axes == 2 and isinstance(env.action_space, spaces.Box)
    env.reset(seed=0)
    env.step(spec.env_action(0, [1.0, 0.5]))  # what collect and play build for it: the values alone
    move, button = env.inner.received[-1]
    assert int(button) == 0 and np.allclose(move, [1.0, 0.5])


def test_a_single_action_discrete_env_steps_by_its_id() -> None:
    """Discrete(1) and no axes: the id form, not the axis form a one-action composite takes."""
    from worldloom.envs.gym import GymFrameEnv

    class Still(Pointer):
        action_names = ["wait"]

        def __init__(self):
            super().__init__("rgb_array")
            self.action_space = spaces.Discrete(1)

        def step(self, action):
            self.received.append(action)
            return self.pos.astype(np.float32), 0.0, False, False, {}

    env = GymFrameEnv(Still(), frame_size=16, env_id="still")
    env.reset(seed=0)
    env.step(env.action_spec.env_action(0))
    assert env.inner.received == [0] and isinstance(env.action_space, spaces.Discrete)


def test_sticky_actions_repeat_the_whole_pair(registered) -> None:
    env = make_gym_env("gym:WorldloomPointerTuple-v0", frame_size=16, sticky_actions=0.5)
    try:
        env.reset(seed=3)
        for i in range(40):
            env.step((i % 3, [0.1 * (i % 5), 0.0]))
        got = env.unwrapped.inner.unwrapped.received
        pairs = [(int(b), round(float(m[0]), 3)) for m, b in got]
        chosen = [(i % 3, round(0.1 * (i % 5), 3)) for i in range(40)]
        repeats = [i for i in range(1, 40) if pairs[i] != chosen[i]]
        assert repeats and all(pairs[i] == pairs[i - 1] for i in repeats)  # a stuck step repeats both parts
    finally:
        env.close()


def test_collect_records_ids_and_axes_and_keys_rebind_both(registered, tmp_path, capsys) -> None:
    from worldloom.cli import main
    from worldloom.data import Dataset

    out = tmp_path / "pointer"
    assert main(["collect", "gym:WorldloomPointerTuple-v0", "--episodes", "3", "--steps", "40", "--frame-size", "16",
                 "--axis-names", "dx,dy", "--keys", "dx=j:-2|l:2,click=f|ArrowRight", "--out", str(out)]) == 0
    ds = Dataset.open(out)
    spec = ds.action_spec
    assert spec.keys[1] == ("f", "ArrowRight") and spec.axes[0].keys == (("j", -2.0), ("l", 2.0))
    assert spec.axes[1].keys == (("ArrowDown", -2.0), ("ArrowUp", 2.0))
    assert ds.meta["policy"]["kind"] == "composite"
    ids = np.concatenate([ep.actions[1:] for ep in ds])
    vals = np.concatenate([ep.axes[1:] for ep in ds])
    assert set(np.unique(ids)) == {0, 1, 2} and vals.std(0).min() > 0.1 and np.abs(vals).max() <= 2.0
    capsys.readouterr()
    for keys, msg in [("dx=j", "'dx' is an axis: give KEY:VALUE entries, e.g. 'dx=ArrowLeft:-2|ArrowRight:2'"),
                      ("dz=j:1", "'dz' has KEY:VALUE entries but is no axis; its axes are dx, dy"),
                      ("dx=j:3", "axis 'dx': key 'j' sets 3.0, outside [-2.0, 2.0]"),
                      ("jump=j", "no action named 'jump'; its actions are none, click, drag; its axes are dx, dy"),
                      ("dx=j:1|k", "'dx': give keys (an action) or KEY:VALUE entries (an axis), not both")]:
        code = main(["collect", "gym:WorldloomPointerTuple-v0", "--episodes", "1", "--steps", "4", "--frame-size", "16",
                     "--axis-names", "dx,dy", "--keys", keys, "--out", str(tmp_path / "bad"), "--overwrite"])
        err = capsys.readouterr().err
        assert code != 0 and msg in err, (keys, err)
    assert not (tmp_path / "bad").exists()


def test_box_env_keys_override_its_axes() -> None:
    pytest.importorskip("pygame", reason="Pendulum renders with pygame (pip install pygame)")
    env = make_gym_env("gym:Pendulum-v1", frame_size=16, keys={"axis_0": ["a:-1", "d:1.5"]})
    try:
        assert env.unwrapped.action_spec.axes[0].keys == (("a", -1.0), ("d", 1.5))
    finally:
        env.close()

