"""An env is one registration: a new one collects, records its defaults and rebuilds with no other change."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from worldloom.actions import ActionSpec
from worldloom.data import Dataset, collect
from worldloom.data.collect import make_recorded_env
from worldloom.envs import make
from worldloom.envs.registry import EnvEntry, _ENTRIES, entry, envs_for_suite, known, register


class Blink(gymnasium.Env):
    """A toy world: a square that lights up while action 1 is held; ``level`` sets how bright."""

    metadata = {"render_fps": 12}

    def __init__(self, size: int = 16, level: int = 200) -> None:
        self.size, self.level = size, level
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_spec = ActionSpec(names=("noop", "light"), keys=((), (" ",)))

    def _obs(self, on: bool) -> np.ndarray:
        return np.full((self.size, self.size, 3), self.level if on else 0, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(False), {}

    def step(self, action):
        return self._obs(int(action) == 1), 0.0, False, False, {}


@pytest.fixture
def blink():
    def record(env_id, size, kw):
        return {"size": size, "level": 200, **kw}  # every default that decides the frames goes in meta.json

    register(EnvEntry("blink", lambda env_id, size, kw: Blink(**kw), record, lambda kw: {"level": 100, **kw},
                      suites=("ghost-suite",)))
    yield
    _ENTRIES.pop("blink")


def test_a_registered_env_collects_and_rebuilds(blink, tmp_path) -> None:
    ds = Dataset.open(collect("blink", tmp_path / "d", episodes=1, steps=6, frame_size=16, progress=False))
    assert ds.meta["env_kwargs"] == {"size": 16, "level": 200} and ds.fps == 12
    assert ds.action_spec.names == ("noop", "light")
    env = make_recorded_env(ds.meta, frame_size=16)  # the record says how to rebuild it
    assert env.level == 200 and env.size == 16
    assert make_recorded_env({"env": "blink", "env_kwargs": {"size": 16}}).level == 100  # an older record's default
    assert envs_for_suite("ghost-suite") == ["blink"] and "blink" in known()
    assert make("blink", size=8).size == 8


def test_make_takes_a_gym_id_with_its_size() -> None:
    pytest.importorskip("pygame", reason="CartPole renders with pygame")
    assert make("gym:CartPole-v1", frame_size=32).observation_space.shape == (32, 32, 3)


def test_lookup_by_name_and_family() -> None:
    assert entry("arena").name == "arena" and entry("gym:CartPole-v1").name == "gym:"
    assert envs_for_suite("physics") == ["phys2d"] and envs_for_suite("fidelity") == []
    with pytest.raises(ValueError, match=r"unknown env id 'atari'; known: \['arena', 'phys2d', 'gym:<id>'"):
        entry("atari")
    with pytest.raises(ValueError, match="unknown env id 'gym:'"):
        entry("gym:")
