"""An env is one registration: a new one collects, records its defaults and rebuilds with no other change."""

from __future__ import annotations

from dataclasses import replace

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from worldloom.actions import ActionSpec
from worldloom.data import Dataset, collect
from worldloom.data.collect import make_recorded_env
from worldloom.envs import make
from worldloom.cli import main
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


class Bare(Blink):
    """A third-party env that states no ActionSpec: only its Discrete(2) space."""

    def __init__(self, size: int = 16, level: int = 200) -> None:
        super().__init__(size, level)
        del self.action_spec


FLASH = ActionSpec(names=("noop", "flash"), keys=((), ("f",)))


@pytest.fixture
def bare():
    register(EnvEntry("bare", lambda env_id, size, kw: Bare(**kw), lambda env_id, size, kw: {"size": size, **kw},
                      actions=FLASH, defaults={"episodes": 2, "steps": 5, "frame_size": 12, "env_kwargs": {"level": 90}}))
    yield
    _ENTRIES.pop("bare")


def test_a_registration_gives_the_actions_keys_and_collection_defaults(bare, tmp_path) -> None:
    ds = Dataset.open(collect("bare", tmp_path / "d", progress=False))  # nothing but the registration's defaults
    assert ds.action_spec == FLASH and len(ds) == 2 and ds.lengths.tolist() == [5, 5]
    assert ds.meta["env_kwargs"] == {"size": 12, "level": 90} and ds[0].frames.shape[1:3] == (12, 12)
    ds = Dataset.open(collect("bare", tmp_path / "e", episodes=1, steps=3, frame_size=8, env_kwargs={"size": 8}, progress=False))
    assert ds.lengths.tolist() == [3] and ds.meta["env_kwargs"] == {"size": 8, "level": 90}  # the user's win
    assert main(["collect", "bare", "--out", str(tmp_path / "f"), "--steps", "4"]) == 0  # the CLI leaves the rest to them
    ds = Dataset.open(tmp_path / "f")
    assert ds.lengths.tolist() == [4, 4] and ds.action_spec.keys == FLASH.keys


def test_a_registration_that_contradicts_its_env_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"env 'bad': unknown defaults key\(s\) \['frames'\]"):
        register(EnvEntry("bad", lambda env_id, size, kw: Bare(), defaults={"frames": 5}))
    with pytest.raises(ValueError, match=r"env 'bad': unknown priors key\(s\) \['agent_px'\]"):
        register(EnvEntry("bad", lambda env_id, size, kw: Bare(), priors={"agent_px": 5}))
    assert "bad" not in _ENTRIES
    register(EnvEntry("bad", lambda env_id, size, kw: Bare(), actions=ActionSpec(names=("a", "b", "c"), keys=((), (), ()))))
    try:
        with pytest.raises(ValueError, match=r"names 3 actions \['a', 'b', 'c'\], but its action space is Discrete\(2\)"):
            collect("bad", tmp_path / "d", episodes=1, steps=3, progress=False)
        assert not (tmp_path / "d" / "meta.json").exists()
    finally:
        _ENTRIES.pop("bad")


def test_one_gym_id_can_carry_its_own_defaults(tmp_path) -> None:
    pytest.importorskip("pygame", reason="CartPole renders with pygame")
    register(replace(entry("gym:CartPole-v1"), name="gym:CartPole-v1",
                     defaults={"frame_size": 24, "steps": 3, "episodes": 1, "env_kwargs": {"adapter": {"fit": "crop"}}}))
    try:
        ds = Dataset.open(collect("gym:CartPole-v1", tmp_path / "d", env_kwargs={"adapter": {"frame_skip": 2}}, progress=False))
    finally:
        _ENTRIES.pop("gym:CartPole-v1")
    adapter = ds.meta["env_kwargs"]["adapter"]
    assert (adapter["fit"], adapter["frame_skip"]) == ("crop", 2) and ds[0].frames.shape == (3, 24, 24, 3)
    assert entry("gym:CartPole-v1").name == "gym:"  # the family again


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
