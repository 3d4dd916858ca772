"""The generic Gymnasium adapter: frames as observations, discrete actions only, env API checks; ids as users
spell them (plugin namespaces, pre-1.0 gym), action names from the env, fitting, frame skip and sticky actions
(the keys themselves: test_keys.py)."""

from __future__ import annotations

import sys

import gymnasium
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


def test_unsupported_action_spaces_and_unknown_ids_are_clear_errors() -> None:
    import gymnasium
    from gymnasium import spaces

    from worldloom.envs.gym import GymFrameEnv

    class Inner(gymnasium.Env):
        render_mode = "rgb_array"

        def __init__(self, space):
            self.action_space, self.observation_space = space, spaces.Box(0, 255, (8, 8, 3), np.uint8)

    for space in (spaces.MultiDiscrete([2, 3]), spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3))),
                  spaces.Dict({"a": spaces.Box(-1, 1, (1,)), "b": spaces.Box(-1, 1, (1,))}),
                  spaces.Tuple((spaces.Discrete(2), spaces.Box(-1, 1, (2, 2))))):  # composite = one Discrete + one 1-D Box
        with pytest.raises(ValueError, match="not Discrete, a 1-D Box, or one of each in a Tuple or Dict"):
            GymFrameEnv(Inner(space), env_id="odd")
    with pytest.raises(ValueError, match="unbounded axis"):
        GymFrameEnv(Inner(spaces.Box(-np.inf, np.inf, (2,))), env_id="free")
    assert make_gym_env("Pendulum-v1").action_spec.n_axes == 1  # a bounded Box is continuous axes
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


# --- frames keep their aspect ratio ------------------------------------------------------------------


def test_fit_pad_keeps_the_aspect_ratio_and_crop_and_stretch_do_what_they_say() -> None:
    frame = np.full((40, 80, 3), 100, np.uint8)  # wide grey frame with a centred white 20x20 square
    frame[10:30, 30:50] = 255
    pad = resize_frame(frame, 32, fit="pad")
    assert (pad[:8] == 0).all() and (pad[24:] == 0).all()  # letterbox rows are black …
    assert (pad[8:24] > 0).all()  # … and the frame fills the rest
    ys, xs = np.nonzero((pad == 255).all(axis=2))
    assert np.ptp(ys) + 1 == np.ptp(xs) + 1 == 8  # the square is still square (32/80 of 20 px)
    ys, xs = np.nonzero((resize_frame(frame, 32, fit="stretch") == 255).all(axis=2))
    assert (np.ptp(ys) + 1, np.ptp(xs) + 1) == (16, 8)  # squeezed: twice as tall as wide
    assert (resize_frame(frame, 8, fit="crop")[2:6, 2:6] == 255).all()  # centre square, edges cut
    np.testing.assert_array_equal(resize_frame(frame, 8, center_crop=True), resize_frame(frame, 8, fit="crop"))
    tall = np.full((90, 30), 7, np.uint8)
    out = resize_frame(tall, 9)
    assert (out[:, :3] == 0).all() and (out[:, 6:] == 0).all() and (out[:, 3:6] == 7).all()
    with pytest.raises(ValueError, match="fit must be one of"):
        resize_frame(frame, 8, fit="zoom")


# --- frame skip and sticky actions, exactly ----------------------------------------------------------


class _Counter(gymnasium.Env):
    """Reward 1 per step, a frame whose value is the step count; records the executed actions."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str = "rgb_array", end_at: int = 1000) -> None:
        self.render_mode, self.end_at = render_mode, end_at
        self.action_space = gymnasium.spaces.Discrete(3)
        self.observation_space = gymnasium.spaces.Discrete(2)
        self.t, self.executed = 0, []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.executed = 0, []
        return 0, {}

    def step(self, action):
        self.t += 1
        self.executed.append(int(action))
        return 0, 1.0, self.t >= self.end_at, False, {"t": self.t}

    def render(self):
        return np.full((4, 4, 3), self.t % 256, np.uint8)


def test_frame_skip_sums_rewards_keeps_the_last_frame_and_stops_at_the_end() -> None:
    inner = _Counter(end_at=5)
    env = GymFrameEnv(inner, frame_size=4, frame_skip=2)
    assert env.metadata["render_fps"] == 15  # 30 fps env, every 2nd frame kept
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(1)
    assert reward == 2.0 and (obs == 2).all() and info["t"] == 2 and inner.executed == [1, 1]
    env.step(2)
    obs, reward, terminated, _, _ = env.step(0)  # only one env step left before the end
    assert reward == 1.0 and terminated and (obs == 5).all()


def test_sticky_actions_repeat_the_executed_action_reproducibly() -> None:
    def executed(seed: int, p: float) -> list[int]:
        inner = _Counter()
        env = GymFrameEnv(inner, frame_size=4, sticky_actions=p)
        env.reset(seed=seed)
        for a in [1, 2] * 200:
            env.step(a)
        return inner.executed

    assert executed(0, 0.0) == [1, 2] * 200
    sticky = executed(0, 0.25)
    assert sticky == executed(0, 0.25)  # seeded: the same episode again
    assert sticky != executed(1, 0.25)
    chosen = [1, 2] * 200
    prev = [0, *sticky[:-1]]  # an episode starts from the no-op
    assert all(e in (c, p) for e, c, p in zip(sticky, chosen, prev))  # the chosen action, or the last one again
    # With two alternating choices, executed != chosen only when stuck on the other one: p / (1 + p) = 0.2
    assert 0.13 < np.mean([e != c for e, c in zip(sticky, chosen)]) < 0.27
    with pytest.raises(ValueError, match=r"sticky_actions must be a probability in \[0, 1\)"):
        GymFrameEnv(_Counter(), sticky_actions=1.0)
    with pytest.raises(ValueError, match="frame_skip must be an int >= 1"):
        GymFrameEnv(_Counter(), frame_skip=0)


# --- real registry families: Atari (ale-py) and MiniGrid ---------------------------------------------


def _need(module: str, pip: str) -> None:
    pytest.importorskip(module, reason=f"needs {pip} (pip install {pip}, or the 'gym' extra)")


def test_pong_by_its_namespaced_id_names_actions_keys_and_letterboxes(tmp_path) -> None:
    _need("ale_py", "ale-py")
    from PIL import Image

    from worldloom.data import Dataset, collect

    out = collect("gym:ALE/Pong-v5", tmp_path / "pong", episodes=2, steps=10, progress=False)
    ds = Dataset.open(out)
    ds.validate()
    assert len(ds) == 2 and ds.n_frames == 20 and ds.frame_shape == (64, 64, 3)
    spec = ds.action_spec
    assert spec.names == ("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE")
    keys = dict(zip(spec.names, spec.keys))
    assert keys["NOOP"] == () and " " in keys["FIRE"]
    assert "ArrowRight" in keys["RIGHT"] and "ArrowLeft" in keys["LEFT"]
    assert ds.meta["env_kwargs"]["adapter"] == {"fit": "pad", "frame_skip": 1, "sticky_actions": 0.0,
                                                "env_module": None, "keys": {}}
    # 210x160 -> 64x49 centred: 7 black columns left, 8 right; Pong's own background is not black
    frame = ds[0].frames[0]
    assert (frame[:, :7] == 0).all() and (frame[:, 56:] == 0).all()
    assert not (frame[:, 7:56] == 0).all(axis=(0, 2)).any()
    # … and the content is the raw frame scaled by the same factor both ways, not squeezed
    import gymnasium as gym

    raw_env = gym.make("ALE/Pong-v5", render_mode="rgb_array")
    try:
        raw_env.reset(seed=0)
        raw = raw_env.render()
    finally:
        raw_env.close()
    expect = np.asarray(Image.fromarray(raw).resize((49, 64), Image.Resampling.BOX))
    assert raw.shape == (210, 160, 3)
    np.testing.assert_array_equal(frame[:, 7:56], expect)


def test_atari_frame_skip_and_sticky_actions_change_the_trajectory_deterministically() -> None:
    _need("ale_py", "ale-py")

    def run(**adapter) -> np.ndarray:
        # ALE v5's own 4-frame skip and 0.25 stickiness off, so that only ours act
        env = make_gym_env("gym:ALE/Pong-v5", frame_size=64, frameskip=1, repeat_action_probability=0.0, **adapter)
        try:
            frames = [env.reset(seed=3)[0]]
            frames += [env.step(a)[0] for a in [2] * 8 + [3] * 8 + [2] * 4]  # paddle one way, then back
        finally:
            env.close()
        return np.stack(frames)

    plain = run()
    np.testing.assert_array_equal(run(), plain)
    skip = run(frame_skip=2)
    np.testing.assert_array_equal(run(frame_skip=2), skip)
    assert not np.array_equal(skip, plain)
    sticky = run(sticky_actions=0.5)
    np.testing.assert_array_equal(run(sticky_actions=0.5), sticky)
    assert not np.array_equal(sticky, plain)


def test_minigrid_collects_with_its_action_names(tmp_path) -> None:
    _need("minigrid", "minigrid")
    from worldloom.data import Dataset, collect

    out = collect("gym:MiniGrid-Empty-5x5-v0", tmp_path / "mg", episodes=2, steps=10, policy="random", progress=False)
    ds = Dataset.open(out)
    ds.validate()
    assert ds.action_spec.names == ("left", "right", "forward", "pickup", "drop", "toggle", "done")
    keys = dict(zip(ds.action_spec.names, ds.action_spec.keys))
    assert keys["left"][0] == "ArrowLeft" and keys["right"][0] == "ArrowRight" and keys["forward"][0] == "ArrowUp"
    assert ds.meta["fps"] == 10 and len(ds) == 2
    ep = ds[0]
    assert ep.frames.shape[1:] == (64, 64, 3) and (ep.frames[0] != 0).any()
    assert not np.array_equal(ep.frames[0], ep.frames[-1])  # the agent turned or moved


# --- plugin namespaces, --env-module, the pre-1.0 gym API --------------------------------------------


def test_missing_namespace_module_is_a_clear_error(monkeypatch) -> None:
    import worldloom.envs.gym as wg

    monkeypatch.setitem(wg.NAMESPACE_MODULES, "Nowhere", ("worldloom_test_no_such_module", "no-such-package"))
    with pytest.raises(ValueError, match=r"^gym:Nowhere/Game-v0: Gymnasium has no namespace Nowhere: module "
                                         r"worldloom_test_no_such_module is not installed; pip install no-such-package"):
        make_gym_env("gym:Nowhere/Game-v0")
    monkeypatch.setitem(wg.NAMESPACE_MODULES, "NowhereGrid", ("worldloom_test_no_such_module", "no-such-package"))
    with pytest.raises(ValueError, match="Gymnasium has no NowhereGrid envs registered.*pip install no-such-package"):
        make_gym_env("NowhereGrid-Empty-v0")  # an un-namespaced family, found by its prefix
    with pytest.raises(ValueError, match="no namespace Zzqx: module zzqx is not installed; pip install zzqx"):
        make_gym_env("Zzqx/Game-v0")  # not in the table: the lowercase namespace is tried
    with pytest.raises(ValueError, match="--env-module worldloom_test_nope: module worldloom_test_nope is not installed"):
        make_gym_env("CartPole-v1", env_module="worldloom_test_nope")
    with pytest.raises(ValueError, match="module worldloom_test_nope is not installed"):
        make_gym_env("worldloom_test_nope:Game-v0")  # Gymnasium's own module:id spelling


def test_env_module_registers_an_id_before_make(tmp_path, monkeypatch) -> None:
    mod = tmp_path / "worldloom_test_plugin.py"
    mod.write_text(
        "import gymnasium, numpy as np\n"
        "class Plugin(gymnasium.Env):\n"
        "    metadata = {'render_modes': ['rgb_array']}\n"
        "    def __init__(self, render_mode=None):\n"
        "        self.render_mode, self.action_space = render_mode, gymnasium.spaces.Discrete(3)\n"
        "        self.observation_space = gymnasium.spaces.Discrete(1)\n"
        "    def reset(self, *, seed=None, options=None):\n"
        "        return 0, {}\n"
        "    def render(self):\n"
        "        return np.zeros((4, 4, 3), np.uint8)\n"
        "gymnasium.register('WorldloomTestPlugin-v0', entry_point=Plugin)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "worldloom_test_plugin", raising=False)
    with pytest.raises(ValueError, match="WorldloomTestPlugin"):  # unknown until its module is imported
        make_gym_env("gym:WorldloomTestPlugin-v0")
    try:
        env = make_gym_env("gym:WorldloomTestPlugin-v0", frame_size=4, env_module="worldloom_test_plugin")
        assert env.action_spec.names == ("action_0", "action_1", "action_2")
        env.close()
    finally:
        gymnasium.registry.pop("WorldloomTestPlugin-v0", None)
        sys.modules.pop("worldloom_test_plugin", None)


def test_pre_1_0_gym_ids_go_through_shimmy_or_say_to_install_it(monkeypatch) -> None:
    import types

    old_gym = types.ModuleType("gym")
    old_gym.__version__ = "0.26.2"
    old_gym.envs = types.SimpleNamespace(registry={"OldOnly-v3": object()})
    monkeypatch.setitem(sys.modules, "gym", old_gym)
    monkeypatch.setitem(sys.modules, "shimmy", None)  # not installed: `import shimmy` fails
    with pytest.raises(ValueError, match=r"^gym:OldOnly-v3: registered only with the pre-1.0 gym API \(gym 0.26.2\); "
                                         r"pip install shimmy"):
        make_gym_env("gym:OldOnly-v3")
    with pytest.raises(ValueError, match="NotInEither"):  # unknown to both registries: Gymnasium's own error
        make_gym_env("gym:NotInEither-v0")

    seen: dict = {}

    class FakeCompat(_Counter):  # what shimmy's GymV26CompatibilityV0 would be
        def __init__(self, env_id: str, make_kwargs: dict) -> None:
            seen.update(env_id=env_id, make_kwargs=make_kwargs)
            super().__init__(render_mode=make_kwargs["render_mode"])

    monkeypatch.setitem(sys.modules, "shimmy", types.ModuleType("shimmy"))
    monkeypatch.setitem(gymnasium.registry, "GymV26Environment-v0",
                        gymnasium.envs.registration.EnvSpec("GymV26Environment-v0", entry_point=FakeCompat))
    env = make_gym_env("gym:OldOnly-v3", frame_size=4, max_speed=2)
    try:
        assert isinstance(env, GymFrameEnv) and env.action_space.n == 3
        assert seen == {"env_id": "OldOnly-v3", "make_kwargs": {"render_mode": "rgb_array", "max_speed": 2}}
    finally:
        env.close()


# --- the CLI and recorded datasets -------------------------------------------------------------------


def _collect_refuses(bad: list[tuple[list[str], str]], tmp_path, capsys, *extra: str) -> None:
    """Each ``(args, message)``: `worldloom collect ARGS` exits 2 with the message, and writes nothing."""
    from worldloom.cli import main

    for args, msg in bad:
        assert main(["collect", *args, "--episodes", "1", "--steps", "3", *extra, "--out", str(tmp_path / "x")]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_collect_cli_gym_flags(tmp_path, capsys) -> None:
    _need("ale_py", "ale-py")
    import json

    from worldloom.cli import main

    out = tmp_path / "pong"
    assert main(["collect", "gym:ALE/Pong-v5", "--episodes", "1", "--steps", "4", "--frame-size", "32", "--fit", "crop",
                 "--frame-skip", "2", "--sticky-actions", "0.1", "--env-module", "ale_py",
                 "--keys", "RIGHTFIRE=f,FIRE=space|x", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["env_kwargs"]["adapter"] == {"fit": "crop", "frame_skip": 2, "sticky_actions": 0.1,
                                             "env_module": "ale_py", "keys": {"RIGHTFIRE": ["f"], "FIRE": [" ", "x"]}}
    assert meta["fps"] == 15 and meta["frame_shape"] == [32, 32, 3]
    assert meta["action_spec"]["keys"][1] == [" ", "x"] and meta["action_spec"]["keys"][4] == ["f"]
    capsys.readouterr()
    bad = [(["arena", "--fit", "pad"], "--fit: only for gym:<id> envs, not 'arena'"),
           (["gym:ALE/Pong-v5", "--keys", "FIRE"], "--keys: entry 'FIRE': expected NAME=KEY"),
           (["gym:ALE/Pong-v5", "--keys", "FIRE=x,UP=x"], "--keys: key 'x' is given to both"),
           (["gym:ALE/Pong-v5", "--sticky-actions", "1"], "--sticky-actions 1.0: must be a probability"),
           (["gym:ALE/Pong-v5", "--frame-skip", "0"], "--frame-skip 0: must be >= 1"),
           (["gym:ALE/Pong-v5", "--keys", "JUMP=j"], "gym:ALE/Pong-v5: --keys: no action named 'JUMP'")]
    _collect_refuses(bad, tmp_path, capsys)


def test_box_axes_are_named_and_collected_within_the_chosen_ranges(tmp_path, capsys) -> None:
    """--axis-names names a Box action's axes; --axis-range narrows what the policy drives, not the model's range."""
    pytest.importorskip("pygame", reason="Pendulum renders with pygame (pip install pygame)")
    from worldloom.cli import main
    from worldloom.data import Dataset

    out = tmp_path / "pend"
    assert main(["collect", "gym:Pendulum-v1", "--episodes", "2", "--steps", "30", "--frame-size", "16",
                 "--axis-names", "torque", "--axis-range", "torque=0.5:1.5", "--out", str(out)]) == 0
    ds = Dataset.open(out)
    assert [(a.name, a.low, a.high) for a in ds.action_spec.axes] == [("torque", -2.0, 2.0)]
    assert ds.meta["env_kwargs"]["adapter"]["axis_names"] == ["torque"]
    assert ds.meta["policy"]["draw_low"] == [0.5] and ds.meta["policy"]["draw_high"] == [1.5]
    for ep in ds:
        v = ep.axes[1:, 0]
        assert ep.axes[0, 0] == 0.0 and v.min() >= 0.5 and v.max() <= 1.5 and np.ptp(v) > 0.05
    capsys.readouterr()
    bad = [(["gym:Pendulum-v1", "--axis-range", "push=0:1"], "--axis-range: unknown axis name(s) ['push']; this env's axes are ['axis_0']"),
           (["gym:Pendulum-v1", "--axis-range", "axis_0=1"], "--axis-range 'axis_0=1': expected NAME=LO:HI"),
           (["gym:Pendulum-v1", "--axis-range", "axis_0=1:0"], "LO must be <= HI"),
           (["gym:Pendulum-v1", "--axis-range", "axis_0=0:3"], "axis 0's draw range 0.0:3.0 must lie inside its range -2.0:2.0"),
           (["gym:Pendulum-v1", "--axis-names", "a,b"], "axis_names ['a', 'b'] has 2 names for the 1 axes"),
           (["gym:CartPole-v1", "--axis-range", "x=0:1"], "--axis-range: gym:CartPole-v1 has no continuous axes"),
           (["arena", "--axis-names", "x"], "--axis-names: only for gym:<id> envs")]
    _collect_refuses(bad, tmp_path, capsys, "--frame-size", "16")


@pytest.mark.filterwarnings("ignore:.*alternative render modes")
def test_recorded_gym_env_keeps_its_framing() -> None:
    """A dataset rebuilds the env it was made in; records from before the adapter was recorded squeezed frames."""
    from worldloom.data.collect import make_recorded_env, resolve_env_kwargs

    old = make_recorded_env({"env": "gym:CartPole-v1", "env_kwargs": {}}, frame_size=16)
    new = make_recorded_env({"env": "gym:CartPole-v1", "env_kwargs": resolve_env_kwargs("gym:CartPole-v1", 16, None)},
                            frame_size=16)
    try:
        assert old.unwrapped.fit == "stretch" and new.unwrapped.fit == "pad"
    finally:
        old.close()
        new.close()
    with pytest.raises(ValueError, match="unknown option"):
        resolve_env_kwargs("gym:CartPole-v1", 16, {"adapter": {"fit": "pad", "zoom": 2}})
