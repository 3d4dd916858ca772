"""Record episodes of an env driven by a collection policy into a dataset (``worldloom collect``).

Design choices:

- Episode ``i`` resets the env *and* the policy with ``seed + i``, so an episode is reproducible on
  its own and a held-out set is just another collection with a disjoint seed range.
- Each episode has at most ``steps`` frames: the reset frame plus ``steps - 1`` env steps (fewer if
  the env terminates or truncates first; the final frame is kept). Episodes of fewer than 2 frames
  hold no transition and are dropped.
- Frames are the env's observations (uint8 (H, W, 3)); ``info["state"]``, where the env gives one,
  is stacked per key into float32 arrays aligned with the frames.
- The writer publishes each finished episode atomically, so Ctrl-C mid-collection leaves a valid
  dataset of the episodes done so far.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from tqdm import tqdm

from worldloom.actions import ActionSpec
from worldloom.data.writer import DatasetWriter

log = logging.getLogger(__name__)

DEFAULT_FPS = 15


def make_env(env_id: str, *, frame_size: int = 64, env_kwargs: dict[str, Any] | None = None) -> gymnasium.Env:
    """An env by worldloom id (``"arena"``, ``"phys2d"``, ``"gym:<Gymnasium id>"``: :mod:`worldloom.envs.registry`).

    Built-in envs get ``frame_size`` through their size field unless ``env_kwargs`` sets it. For a
    ``gym:`` env, ``env_kwargs["adapter"]`` holds the wrapper's options (``fit``, ``frame_skip``,
    ``sticky_actions``, ``env_module``, ``keys``: :func:`worldloom.envs.gym.adapter_options`); the
    other fields go to ``gymnasium.make``.
    """
    from worldloom.envs.registry import entry

    return entry(env_id).build(env_id, frame_size, resolve_env_kwargs(env_id, frame_size, env_kwargs))


def make_recorded_env(record: Mapping[str, Any], *, frame_size: int = 64) -> gymnasium.Env:
    """The env a checkpoint's ``config.json`` or a dataset's ``meta.json`` records (``env``, ``env_kwargs``).

    Arena records from before the control law was recorded (sixth session) were all made with the
    first worlds' ``smooth`` law, so a record without ``control`` gets that, not today's default.
    Likewise ``gym:`` records from before the adapter options were recorded squeezed whole frames
    into the square: one without ``adapter`` gets ``fit="stretch"``, not today's ``pad``.
    """
    from worldloom.envs.registry import entry

    env_id = str(record.get("env", ""))
    kwargs = entry(env_id).legacy(dict(record.get("env_kwargs") or {}))
    return make_env(env_id, frame_size=frame_size, env_kwargs=kwargs)


def resolve_env_kwargs(env_id: str, frame_size: int, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The env kwargs with ``frame_size`` filled into a built-in env's size field (``arena``: view);
    what ``meta.json`` records, so that the dataset says how to rebuild its env."""
    from worldloom.envs.registry import entry

    return entry(env_id).record(env_id, frame_size, dict(env_kwargs or {}))


def _axis_draw(spec: ActionSpec, ranges: Mapping[str, tuple[float, float]] | None) -> list[tuple[float, float] | None]:
    """``ranges`` (axis name -> (lo, hi)) as one entry per axis of ``spec`` (None: its whole range)."""
    names = [a.name for a in spec.axes]
    unknown = sorted(set(ranges or {}) - set(names))
    if unknown:
        raise ValueError(f"axis_ranges: unknown axis name(s) {unknown}; this env's axes are {names}")
    return [(ranges or {}).get(n) for n in names]


def stack_state(states: list[Any], episode: int) -> dict[str, np.ndarray] | None:
    """Per-step ``info["state"]`` dicts -> one float32 (T, ...) array per key; None if no state."""
    if not states or not isinstance(states[0], dict):
        return None
    keys = sorted(states[0])
    out: dict[str, np.ndarray] = {}
    for k in keys:
        try:
            out[k] = np.stack([np.asarray(s[k], dtype=np.float32) for s in states])
        except (KeyError, ValueError, TypeError) as e:
            # A key that appears, vanishes or changes shape mid-episode cannot be stacked.
            raise ValueError(f"episode {episode}: info['state'][{k!r}] is not the same shape at every step ({e})") from None
    return out


def collect(
    env_id: str,
    out: str | Path,
    episodes: int | None = None,
    steps: int | None = None,
    *,
    policy: str | None = None,
    seed: int = 0,
    frame_size: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    axis_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Path:
    """Collect ``episodes`` episodes of up to ``steps`` frames each into the dataset dir ``out``.

    An argument left None takes the env registration's collection default, else
    :data:`worldloom.envs.registry.COLLECT_DEFAULTS`'s (20 episodes of 300 frames, ``momentum``, 64 px);
    the env's ActionSpec is its registration's, or the one it states (:func:`worldloom.envs.registry.action_spec`).

    Args:
        env_id: ``"arena"`` or ``"gym:<Gymnasium id>"`` (discrete actions, e.g. ``"gym:CartPole-v1"``,
            ``"gym:ALE/Pong-v5"``).
        out: dataset directory; must be empty or absent unless ``overwrite``.
        episodes: number of episodes to run (episodes ending before 2 frames are dropped).
        steps: max frames per episode, counting the reset frame.
        policy: collection policy name from :mod:`worldloom.envs.policies` (``momentum``, ``random``).
        seed: episode ``i`` resets env and policy with ``seed + i``.
        frame_size: side of the square frames.
        env_kwargs: env config fields (stored in ``meta.json``); for ``gym:`` envs the wrapper's
            options go in its ``"adapter"`` object (e.g. ``{"adapter": {"fit": "crop", "frame_skip": 2}}``).
        progress: show a tqdm bar over frames (only when stderr is a terminal).
        overwrite: replace an existing worldloom dataset at ``out``.
        axis_ranges: axis name -> (lo, hi) that the collection policy drives it within (inside the
            axis's range; lo == hi holds it), e.g. ``{"gas": (0.3, 0.8), "brake": (0, 0)}``; the
            ActionSpec keeps the env's ranges.

    Returns:
        The dataset path.
    """
    from worldloom.envs.registry import action_spec, collect_defaults

    d = collect_defaults(env_id, {"episodes": episodes, "steps": steps, "policy": policy, "frame_size": frame_size,
                                  "env_kwargs": env_kwargs})
    episodes, steps, policy, frame_size, env_kwargs = (d[k] for k in ("episodes", "steps", "policy", "frame_size", "env_kwargs"))
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (an episode needs a transition), got {steps}")
    from worldloom.envs.policies import CompositePolicy, make_axis_policy, make_policy

    out = Path(out)
    env_kwargs = resolve_env_kwargs(env_id, frame_size, env_kwargs)
    env = make_env(env_id, frame_size=frame_size, env_kwargs=env_kwargs)
    try:
        spec = action_spec(env_id, env)
        # Continuous axes (a Box env): the policy gives their values; the discrete part stays the no-op,
        # unless the env has one too (composite: a Tuple or Dict of both), then the pair.
        composite = spec.n_axes > 0 and spec.n > 1
        pol: Any = (make_axis_policy(policy, [a.low for a in spec.axes], [a.high for a in spec.axes], seed,
                                     draw=_axis_draw(spec, axis_ranges)) if spec.n_axes
                    else make_policy(policy, spec.n, seed))
        if composite:
            pol = CompositePolicy(make_policy(policy, spec.n, seed), pol)
        if axis_ranges and not spec.n_axes:
            raise ValueError(f"axis_ranges: {env_id} has no continuous axes (its actions are {list(spec.names)})")
        fps = max(1, int(round(float(env.metadata.get("render_fps") or DEFAULT_FPS))))  # gym --frame-skip divides it
        shape = env.observation_space.shape
        frame_shape = tuple(shape) if shape is not None and len(shape) == 3 else (frame_size, frame_size, 3)
        writer = DatasetWriter(
            out,
            env=env_id,
            env_kwargs=env_kwargs,
            frame_shape=frame_shape,  # type: ignore[arg-type]
            fps=fps,
            action_spec=spec,
            policy=pol.to_dict(),
            seed=seed,
            overwrite=overwrite,
        )
        bar = tqdm(
            total=episodes * steps,
            unit="frame",
            desc=f"collect {env_id}",
            disable=not progress or not sys.stderr.isatty(),
        )
        dropped = 0
        try:
            for i in range(episodes):
                ep_seed = seed + i
                obs, info = env.reset(seed=ep_seed)
                pol.reset(ep_seed)
                frames, actions, states, axes = [obs], [0], [info.get("state")], [spec.rest_axes()]
                bar.update(1)
                for _ in range(steps - 1):
                    act = pol.act(obs, info)
                    a, v = (act if composite else (0, act) if spec.n_axes else (int(act), None))
                    obs, _, terminated, truncated, info = env.step(spec.env_action(a, v))
                    if spec.n_axes:
                        axes.append(np.asarray(v, np.float32))
                    frames.append(obs)
                    actions.append(a)
                    states.append(info.get("state"))
                    bar.update(1)
                    if terminated or truncated:
                        break
                if len(frames) < steps:  # ended early: keep the bar's total honest
                    bar.total -= steps - len(frames)
                    bar.refresh()
                if len(frames) < 2:
                    dropped += 1
                    log.warning("episode %d (seed %d) ended after %d frame(s); dropped", i, ep_seed, len(frames))
                    continue
                writer.add_episode(
                    np.stack(frames).astype(np.uint8, copy=False),
                    np.asarray(actions, dtype=np.int64),
                    stack_state(states, i),
                    seed=ep_seed,
                    axes=np.stack(axes) if spec.n_axes else None,
                )
                bar.set_postfix(episodes=writer.n_episodes)
        finally:
            bar.close()
            writer.close()
        if writer.n_episodes == 0:
            raise RuntimeError(f"{out}: all {episodes} episodes ended before 2 frames; nothing collected")
        if dropped:
            log.warning("%s: dropped %d of %d episodes shorter than 2 frames", out, dropped, episodes)
    finally:
        env.close()
    return out


__all__ = ["collect", "make_env", "make_recorded_env", "resolve_env_kwargs"]
