"""Any Gymnasium env with discrete, ``Box`` or composite actions, seen through its rendered frames (``"gym:<id>"``).

:func:`make_gym_env` wraps ``gymnasium.make(id, render_mode="rgb_array")`` so that it looks like
worldloom's own envs: the observation is the env's ``render()`` frame fitted into a square uint8
``(frame_size, frame_size, 3)``, the actions are ids, axis values or both (``ActionSpec.env_action``)
described by an ``ActionSpec`` (on ``env.unwrapped.action_spec``) with the env's own names where it states them, and
``render()`` returns the same frame. A generic env's internal state has no agreed meaning, so it
reports no ``info["state"]``; Atari games whose object addresses are known (``envs/atari_state.py``:
Pong) report their objects read from the emulator's RAM, so the eval's object scores apply to them.

Design choices:

- The wrapper is a ``gymnasium.Env`` holding the inner env, not a ``gymnasium.Wrapper``, so that
  ``env.unwrapped`` is the wrapper and ``env.unwrapped.action_spec`` works as for built-in envs.
- Ids as users spell them: ``ALE/Pong-v5`` works without naming ``ale_py`` first. When Gymnasium
  says a namespace (or, for un-namespaced families such as ``MiniGrid-*``, an id prefix) is unknown,
  the module that registers it is imported (:data:`NAMESPACE_MODULES`, else the lowercase namespace)
  and ``make`` is retried; ``env_module`` imports one by hand. ``module:id`` (Gymnasium's own
  spelling) still works. An id that only the pre-1.0 ``gym`` registry knows goes through shimmy's
  ``GymV26Environment-v0`` / ``GymV21Environment-v0``. Every failure is one line naming what to install.
- Frames keep their aspect ratio by default (``fit="pad"``: letterboxed with black), so a ball stays
  round and nothing at the frame's edge is lost (in CartPole the cart can be anywhere across the wide
  frame, so a crop would lose it); ``"crop"`` (centre square) and ``"stretch"`` (the whole frame
  squeezed, the only behaviour before the fit was recorded) are the alternatives (:mod:`.framing`).
- Action names come from the env (``get_action_meanings()`` for Atari, the ``actions`` enum of
  MiniGrid, an ``action_names`` list), else ``action_0..n-1``. Keys follow from the names
  (:func:`worldloom.envs.keys.derive_keys`: arrows + WASD for directions, space for fire/jump, q/e/z/c for diagonals,
  none for a no-op, the id's digit for the rest), unique per key because the player maps one key to
  one action; ``keys`` overrides them per action. Index 0 stays the env's action 0: reordering would
  make the dataset disagree with the env it names (MiniGrid's action 0 is ``left``, not a no-op).
- A 1-D ``Box`` action becomes continuous axes with the space's ranges (``axis_spec``); Gymnasium
  spaces carry no names, so ``axis_names`` gives them (CarRacing: ``steer, gas, brake``), else ``axis_i``.
- ``frame_skip`` K repeats an action for K env steps (rewards summed, the last frame kept; the env's
  fps is divided by K). ``sticky_actions`` P repeats the previously executed action instead of the
  chosen one with probability P at every env step (Machado et al. 2018); its generator is seeded
  from the reset seed, apart from the policy's, so an episode is reproducible. The dataset records
  the chosen action: stickiness is the env's randomness, not the player's intent. (ALE v5 envs
  already skip 4 frames and stick with p=0.25 inside; pass ``frameskip``/``repeat_action_probability``
  env kwargs to change that.)
- ``follow`` N watches a grid world (MiniGrid, BabyAI) through a camera that follows the agent over its map,
  N x N tiles in the world's axes (:mod:`.follow`): the view scrolls as the agent walks and places come back
  when it walks back, where ``agent_pov`` turns the whole view with every turn.
- Classic-control and toy-text envs draw with pygame; rendering to an array needs no window, so the
  SDL video/audio drivers default to "dummy" (headless machines, CI).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from worldloom.actions import ActionSpec

from .framing import DEFAULT_FIT, FITS, Fit, resize_frame
from .keys import action_names, apply_spec_keys, axis_spec, check_keys, derive_keys

GYM_PREFIX = "gym:"
ADAPTER_KEY = "adapter"
"""The ``env_kwargs`` field holding this wrapper's own options (the rest go to ``gymnasium.make``)."""

NAMESPACE_MODULES: dict[str, tuple[str, str]] = {
    # namespace or id prefix -> (module that registers it, pip package that ships the module)
    "ALE": ("ale_py", "ale-py"),
    "MiniGrid": ("minigrid", "minigrid"),
    "BabyAI": ("minigrid", "minigrid"),
    "MiniWorld": ("miniworld", "miniworld"),
    "dm_control": ("shimmy", "shimmy[dm-control]"),
    "CrafterReward": ("crafter", "crafter"),  # registers with the pre-1.0 gym: needs shimmy too
    "CrafterNoReward": ("crafter", "crafter"),
}
"""Modules imported when Gymnasium does not know a namespace (``ALE/…``) or an id prefix (``MiniGrid-…``).
A namespace not listed is tried as its lowercase name; an un-namespaced prefix only if listed here
(guessing arbitrary modules from ids like ``Test-v0`` could import anything)."""


ADAPTER_OPTIONS = ("fit", "frame_skip", "sticky_actions", "env_module", "keys", "axis_names", "follow")


def adapter_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """This wrapper's options with defaults filled in and values checked, as ``meta.json`` records them
    under ``env_kwargs["adapter"]``: ``fit``, ``frame_skip``, ``sticky_actions``, ``env_module``, ``keys``,
    ``axis_names`` (a ``Box`` action's axis names, for envs that do not state them; None: ``axis_i``), ``follow``
    (N: the frame is the N x N map tiles around the agent, :mod:`.follow`; 0 or absent: the env's own render)."""
    o = dict(options or {})
    unknown = sorted(set(o) - set(ADAPTER_OPTIONS))
    if unknown:
        raise ValueError(f"env_kwargs.adapter: unknown option(s) {unknown}; known: {', '.join(ADAPTER_OPTIONS)}")
    fit = o.get("fit", DEFAULT_FIT)
    if fit not in FITS:
        raise ValueError(f"fit must be one of {list(FITS)}, got {fit!r}")
    skip = o.get("frame_skip", 1)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 1:
        raise ValueError(f"frame_skip must be an int >= 1, got {skip!r}")
    sticky = o.get("sticky_actions", 0.0)
    if isinstance(sticky, bool) or not isinstance(sticky, (int, float)) or not 0.0 <= float(sticky) < 1.0:
        raise ValueError(f"sticky_actions must be a probability in [0, 1), got {sticky!r}")
    module = o.get("env_module")
    if module is not None and (not isinstance(module, str) or not module):
        raise ValueError(f"env_module must be a module name, got {module!r}")
    keys = check_keys(o.get("keys") or {})
    names = o.get("axis_names")
    if names is not None and (not isinstance(names, (list, tuple)) or not names
                              or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names)):
        raise ValueError(f"axis_names must be a list of distinct non-empty names, got {names!r}")
    follow = o.get("follow", 0)
    if isinstance(follow, bool) or not isinstance(follow, int) or follow < 0:
        raise ValueError(f"follow must be a whole number of map tiles >= 1 (0: off), got {follow!r}")
    out = {"fit": fit, "frame_skip": int(skip), "sticky_actions": float(sticky), "env_module": module, "keys": keys}
    if names is not None:  # recorded only where given
        out["axis_names"] = list(names)
    return out if not follow else {**out, "follow": int(follow)}


class GymFrameEnv(gymnasium.Env):
    """A Gymnasium env (discrete, Box or composite actions) whose observation is its fitted rendered frame."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        inner: gymnasium.Env,
        frame_size: int = 64,
        env_id: str = "",
        *,
        fit: Fit = DEFAULT_FIT,
        frame_skip: int = 1,
        sticky_actions: float = 0.0,
        keys: Mapping[str, Sequence[str]] | None = None,
        axis_names: Sequence[str] | None = None,
        follow: int = 0,
    ) -> None:
        if frame_size < 1:
            raise ValueError(f"frame_size must be >= 1, got {frame_size}")
        name = env_id or str(getattr(inner.spec, "id", type(inner).__name__))
        opts = adapter_options({"fit": fit, "frame_skip": frame_skip, "sticky_actions": sticky_actions, "keys": keys,
                                "axis_names": axis_names, "follow": follow})
        space = inner.action_space
        disc, box, self._layout, self._order = _action_parts(space, name)
        if inner.render_mode != "rgb_array":
            raise ValueError(f"gym:{name}: cannot render to an array (render_mode={inner.render_mode!r})")
        self.inner = inner
        self.env_id = name
        self.frame_size = int(frame_size)
        self.fit: Fit = opts["fit"]
        self.frame_skip: int = opts["frame_skip"]
        self.sticky_actions: float = opts["sticky_actions"]
        self.follow: int = opts.get("follow", 0)
        if self.follow:
            from .follow import check_follow, tile_px

            check_follow(inner.unwrapped, name)
            self._tile = tile_px(self.frame_size, self.follow)
        self.observation_space = spaces.Box(0, 255, (self.frame_size, self.frame_size, 3), dtype=np.uint8)
        self._start = 0 if disc is None else int(disc.start)  # Discrete(n, start): our ids are 0..n-1
        spec = None
        if disc is not None:
            names = action_names(inner, int(disc.n), self._start)
            spec = ActionSpec(names=names, keys=derive_keys(names))
        if box is not None:
            if opts.get("axis_names") is not None and len(opts["axis_names"]) != box.shape[0]:
                raise ValueError(f"gym:{name}: axis_names {opts['axis_names']} has {len(opts['axis_names'])} names "
                                 f"for the {box.shape[0]} axes of {box}")
            spec = axis_spec(box.low, box.high, names=opts.get("axis_names"), discrete=spec)
        assert spec is not None
        self.action_spec = apply_spec_keys(spec, opts["keys"], f"gym:{name}")
        # The action takes the form ActionSpec.env_action gives: the id, the axis values (a Box, or a one-action
        # Discrete beside one: only the axes vary), or the pair.
        ids = None if box is not None and self.action_spec.n == 1 else spaces.Discrete(self.action_spec.n)
        values = None if box is None else spaces.Box(box.low, box.high, box.shape, dtype=np.float32)
        self.action_space: spaces.Space = (spaces.Tuple((ids, values)) if ids is not None and values is not None
                                           else ids if ids is not None else values)  # type: ignore[assignment]
        self.render_mode = "rgb_array"
        self.metadata = {
            "render_modes": ["rgb_array"],
            "render_fps": float(inner.metadata.get("render_fps") or 15) / self.frame_skip,
        }
        self._frame: np.ndarray | None = None
        self._state: dict[str, Any] | None = None
        from .atari_state import game_of

        # Objects from the emulator's RAM where the game's addresses are known (envs/atari_state.py).
        self._game = game_of(name) if hasattr(getattr(inner.unwrapped, "ale", None), "getRAM") else None
        self._prev: Any = 0  # the last executed action (sticky actions); episodes start from the no-op (or rest axes)
        self._sticky_rng = np.random.default_rng()

    def _observe(self) -> np.ndarray:
        if self.follow:
            from .follow import follow_frame

            frame = follow_frame(self.inner.unwrapped, self.follow, self._tile)
        else:
            frame = self.inner.render()
        if frame is None:
            raise RuntimeError(f"gym:{self.env_id}: render() returned None")
        self._frame = resize_frame(np.asarray(frame), self.frame_size, fit=self.fit)
        if self._game is not None:
            from .atari_state import fit_geometry, read_state

            h, w = np.asarray(frame).shape[:2]
            self._state = read_state(self._game, self.inner.unwrapped.ale.getRAM(), fit_geometry(h, w, self.frame_size, self.fit))
        return self._frame.copy()

    def _info(self, info: Mapping[str, Any]) -> dict[str, Any]:
        return {**info, "state": self._state} if self._state is not None else dict(info)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            # Its own stream: the collection policy seeds default_rng(seed) too, and sharing that
            # stream would tie the policy's choices to when the env sticks.
            self._sticky_rng = np.random.default_rng([0x571C, int(seed)])
        self._prev = self._rest()
        _, info = self.inner.reset(seed=seed, options=options)
        return self._observe(), self._info(info)

    def _rest(self) -> tuple[int, np.ndarray | None]:
        """The action an episode starts from (sticky actions repeat it), as :meth:`_check` gives it."""
        return 0, (self.action_spec.rest_axes() if self.action_spec.n_axes else None)

    def _check(self, action: Any) -> tuple[int, np.ndarray | None]:
        """``action`` in the form ``ActionSpec.env_action`` gives for this spec, as (id, axis values or None);
        else a ``ValueError`` naming it."""
        spec, where = self.action_spec, f"gym:{self.env_id}: action"
        if not spec.n_axes:
            return self._check_id(action), None
        if spec.n == 1:
            return 0, spec.check_axes(np.asarray(action, np.float32).reshape(-1), where)
        if not (isinstance(action, (tuple, list)) and len(action) == 2):
            raise ValueError(f"{where} {action!r}: this env's action is a pair (action id, [axis values])")
        return self._check_id(action[0]), spec.check_axes(np.asarray(action[1], np.float32).reshape(-1), where)

    def _check_id(self, value: Any) -> int:
        a = int(value)
        if not 0 <= a < self.action_spec.n:
            raise ValueError(f"gym:{self.env_id}: action id {value!r} outside 0..{self.action_spec.n - 1}")
        return a

    def _inner_action(self, a: tuple[int, np.ndarray | None]) -> Any:
        """(id, axis values) as the inner env takes them (its Discrete's start, its Tuple or Dict layout)."""
        if self._layout == "discrete":
            return self._start + a[0]
        if self._layout == "box":
            return a[1]
        parts = {"d": self._start + a[0], "b": a[1]}
        if self._layout == "tuple":
            return tuple(parts[k] for k, _ in self._order)
        return {key: parts[k] for k, key in self._order}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = self._check(action)
        total = 0.0
        terminated = truncated = False
        info: dict[str, Any] = {}
        for _ in range(self.frame_skip):
            executed = self._prev if self.sticky_actions and self._sticky_rng.random() < self.sticky_actions else a
            self._prev = executed
            _, reward, terminated, truncated, info = self.inner.step(self._inner_action(executed))
            total += float(reward)
            if terminated or truncated:
                break
        return self._observe(), total, bool(terminated), bool(truncated), self._info(info)

    def render(self) -> np.ndarray | None:
        return None if self._frame is None else self._frame.copy()

    def close(self) -> None:
        self.inner.close()


def _action_parts(space: spaces.Space, name: str) -> tuple[Any, Any, str, list[tuple[str, str]]]:
    """The discrete and continuous parts of an env's action space (``Discrete`` / 1-D ``Box`` or None), its
    layout (``"discrete"``, ``"box"``, ``"tuple"``, ``"dict"``) and, for the last two, the parts in order as
    (``"d"`` or ``"b"``, Dict key). A composite action is one ``Discrete`` and one 1-D ``Box`` in a Tuple or
    Dict (keys plus a mouse delta, a gripper plus joint targets); any other space is an error naming it."""

    def bounded(box: spaces.Box) -> spaces.Box:
        if not (np.all(np.isfinite(box.low)) and np.all(np.isfinite(box.high))):
            raise ValueError(f"gym:{name}: Box action space {box} has an unbounded axis; worldloom needs a range per axis")
        return box

    def is_box(x: spaces.Space) -> bool:
        return isinstance(x, spaces.Box) and len(x.shape) == 1

    if isinstance(space, spaces.Discrete):
        return space, None, "discrete", []
    if is_box(space):
        return None, bounded(space), "box", []  # type: ignore[arg-type]
    parts: list[tuple[str, spaces.Space]] = []
    if isinstance(space, spaces.Tuple):
        parts = [(str(i), x) for i, x in enumerate(space.spaces)]
    elif isinstance(space, spaces.Dict):
        parts = list(space.spaces.items())
    kinds = ["d" if isinstance(x, spaces.Discrete) else "b" if is_box(x) else "?" for _, x in parts]
    if sorted(kinds) != ["b", "d"]:
        raise ValueError(
            f"gym:{name}: action space {space} is not Discrete, a 1-D Box, or one of each in a Tuple or Dict; "
            "worldloom supports those (wrap multi-discrete controls into one of them first)"
        )
    disc = next(x for (_, x), k in zip(parts, kinds) if k == "d")
    box = bounded(next(x for (_, x), k in zip(parts, kinds) if k == "b"))  # type: ignore[arg-type]
    return disc, box, "tuple" if isinstance(space, spaces.Tuple) else "dict", [(k, key) for (key, _), k in zip(parts, kinds)]


# --- making the inner env ----------------------------------------------------------------------------


def _pip_name(module: str) -> str:
    top = module.split(".")[0]
    return {m: p for m, p in NAMESPACE_MODULES.values()}.get(top, top)


def _import_module(module: str, env_id: str, context: str, pip: str | None = None, hint: str = "") -> None:
    """Import ``module``; a ``ValueError`` naming what to pip install if it is not there."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name != module and not module.startswith(f"{e.name}."):  # a dependency of it
            raise ValueError(f"gym:{env_id}: {context}: importing {module} failed ({e}); pip install {_pip_name(e.name)}") from None
        raise ValueError(f"gym:{env_id}: {context}: module {module} is not installed; pip install {pip or _pip_name(module)}{hint}") from None
    except Exception as e:  # noqa: BLE001 - a broken plugin: say which one
        raise ValueError(f"gym:{env_id}: {context}: importing {module} failed ({type(e).__name__}: {e})") from None


def _namespace_module(env_name: str) -> tuple[str, str, str] | None:
    """(module, pip package, what is missing) for an id whose namespace or family prefix is unknown."""
    try:
        ns, name, _ = gymnasium.envs.registration.parse_env_id(env_name)
    except gymnasium.error.Error:
        return None
    if ns is not None:
        module, pip = NAMESPACE_MODULES.get(ns, (ns.lower(), ns.lower()))
        return module, pip, f"Gymnasium has no namespace {ns}"
    prefix = name.split("-")[0]
    if prefix in NAMESPACE_MODULES:
        module, pip = NAMESPACE_MODULES[prefix]
        return module, pip, f"Gymnasium has no {prefix} envs registered"
    return None


def _old_gym_version(env_name: str) -> str | None:
    """The pre-1.0 ``gym`` package's version if its registry (and not Gymnasium's) has ``env_name``."""
    try:
        import gym  # type: ignore[import-not-found]  # noqa: PLC0415 - only on this fallback path
    except Exception:  # not installed, or an old gym that no longer imports with today's numpy
        return None
    registry = getattr(getattr(gym, "envs", None), "registry", None)
    ids = getattr(registry, "env_specs", registry)  # gym < 0.26 wraps its dict in an EnvRegistry
    try:
        known = env_name in ids  # type: ignore[operator]
    except TypeError:
        return None
    return str(getattr(gym, "__version__", "0")) if known else None


def _via_shimmy(env_name: str, gym_version: str, kwargs: dict[str, Any]) -> gymnasium.Env:
    try:
        import shimmy  # type: ignore[import-not-found]  # noqa: F401, PLC0415 - registers GymV2xEnvironment-v0
    except ImportError:
        raise ValueError(
            f"gym:{env_name}: registered only with the pre-1.0 gym API (gym {gym_version}); "
            "pip install shimmy to run it through Gymnasium's compatibility layer"
        ) from None
    major_minor = tuple(int(x) for x in re.findall(r"\d+", gym_version)[:2]) or (0, 0)
    if major_minor >= (0, 26):  # the terminated/truncated API: render_mode goes to gym.make
        return gymnasium.make("GymV26Environment-v0", env_id=env_name, make_kwargs={"render_mode": "rgb_array", **kwargs})
    return gymnasium.make("GymV21Environment-v0", env_id=env_name, make_kwargs=kwargs, render_mode="rgb_array")


def _make_inner(env_id: str, kwargs: dict[str, Any], env_module: str | None) -> gymnasium.Env:
    if env_module:
        _import_module(env_module, env_id, f"--env-module {env_module}")
    env_name = env_id.split(":", 1)[1] if ":" in env_id else env_id  # "module:id": Gymnasium imports module
    tried: set[str] = set()
    while True:
        try:
            return gymnasium.make(env_id, render_mode="rgb_array", **kwargs)
        except ModuleNotFoundError as e:  # the "module:id" spelling's module, or a dependency of the env
            cause = e.__cause__ if isinstance(e.__cause__, ModuleNotFoundError) else e
            missing = cause.name or str(cause)
            raise ValueError(f"gym:{env_id}: module {missing} is not installed; pip install {_pip_name(missing)}") from None
        except gymnasium.error.Error as e:  # unknown id, bad version, missing extra …
            if isinstance(e, (gymnasium.error.NamespaceNotFound, gymnasium.error.NameNotFound)):
                plugin = _namespace_module(env_name)
                if plugin is not None and plugin[0] not in tried:
                    module, pip, why = plugin
                    tried.add(module)
                    _import_module(module, env_id, why, pip, " (or name the module that registers it with --env-module)")
                    continue  # registered now, or still unknown: then the id itself is wrong
            unregistered = isinstance(e, gymnasium.error.UnregisteredEnv) or "No registered env" in str(e)
            version = _old_gym_version(env_name) if unregistered else None
            if version is not None:
                return _via_shimmy(env_name, version, kwargs)
            raise ValueError(f"gym:{env_id}: {e}") from None


def make_gym_env(
    env_id: str,
    frame_size: int = 64,
    *,
    fit: Fit = DEFAULT_FIT,
    frame_skip: int = 1,
    sticky_actions: float = 0.0,
    env_module: str | None = None,
    keys: Mapping[str, Sequence[str]] | None = None,
    axis_names: Sequence[str] | None = None,
    follow: int = 0,
    **kwargs: Any,
) -> gymnasium.Env:
    """``gymnasium.make(env_id, render_mode="rgb_array", **kwargs)`` seen as frames.

    ``env_id`` is a Gymnasium id as users spell it (``"CartPole-v1"``, ``"ALE/Pong-v5"``,
    ``"MiniGrid-Empty-5x5-v0"``, ``"ale_py:ALE/Pong-v5"``); a leading ``"gym:"`` is stripped.
    ``env_module`` is imported first (a plugin that registers the id). ``fit``, ``frame_skip``,
    ``sticky_actions``, ``keys`` (action name -> keys, axis name -> ``KEY:VALUE`` entries: ``envs.keys.check_keys``)
    ``axis_names`` and ``follow`` are the wrapper's options (module docstring).
    Raises ``ValueError`` for an unknown id, a missing plugin (naming what to pip install),
    an action space other than those above, or a bad option.
    """
    if env_id.startswith(GYM_PREFIX):
        env_id = env_id[len(GYM_PREFIX) :]
    adapter_options({"fit": fit, "frame_skip": frame_skip, "sticky_actions": sticky_actions,
                     "env_module": env_module, "keys": keys, "axis_names": axis_names, "follow": follow})  # bad options fail before an env is built
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    inner = _make_inner(env_id, kwargs, env_module)
    try:
        return GymFrameEnv(inner, frame_size=frame_size, env_id=env_id, fit=fit, frame_skip=frame_skip,
                           sticky_actions=sticky_actions, keys=keys, axis_names=axis_names, follow=follow)
    except BaseException:
        inner.close()
        raise


__all__ = [
    "ADAPTER_KEY", "DEFAULT_FIT", "FITS", "GYM_PREFIX", "NAMESPACE_MODULES", "GymFrameEnv", "adapter_options",
    "make_gym_env", "resize_frame",
]
