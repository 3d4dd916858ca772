"""Where a rollout starts: context frames from a real reset of the checkpoint's env.

One function serves play (which keeps the env for the truth view) and bench: reset the env the
checkpoint was trained on with a seed and step it with the given context actions; where that env
cannot be built here, use the ``context_frames.npy`` / ``context_actions.npy`` bundled with the
checkpoint (never unpickled), else black frames. ``source`` says which, for reports.

Every training command writes that pair into the checkpoint it makes (:func:`save_context`: the
first ``CONTEXT`` frames of one training episode, the dataset's first by default), so a model of
imported videos or a LeRobot dataset, whose env exists nowhere, starts play from a real frame. A
dataset with continuous axes adds ``context_axes.npy`` (the same frames' raw axis values), so such a
model starts from the arm's real motion, not from every axis at rest.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CONTEXT = 4  # frames a play session or a bench starts from
FILES = ("context_frames.npy", "context_actions.npy", "context_axes.npy")


@dataclass
class Context:
    """Where a rollout starts: frames (T, H, W, 3) uint8, actions (T,), axis values (T, A) raw or None (at
    rest), what they came from (for reports) and the env they came from (open, or None)."""

    frames: np.ndarray
    actions: np.ndarray
    axes: np.ndarray | None
    source: str
    env: Any = None


def save_context(out: str | Path, ds: Any, episode: int = 0, n: int = CONTEXT) -> None:
    """Store the first ``n`` frames and actions of episode ``episode`` of dataset ``ds`` in checkpoint ``out``."""
    from ..config import atomic_write_bytes

    if not 0 <= episode < len(ds):
        raise ValueError(f"context episode {episode}: the dataset has episodes 0..{len(ds) - 1}")
    ep = ds[episode]
    k = min(n, ep.len)
    arrays = [np.array(ep.frames[:k]), np.array(ep.actions[:k])]
    if ep.axes is not None:
        arrays.append(np.asarray(ep.axes[:k], np.float32))
    elif (Path(out) / FILES[2]).is_file():
        (Path(out) / FILES[2]).unlink()  # a stale one from an earlier run into the same directory
    for name, arr in zip(FILES, arrays):
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        atomic_write_bytes(Path(out) / name, buf.getvalue())


def copy_context(src: str | Path, out: str | Path) -> None:
    """Carry a checkpoint's stored context (if any) into the checkpoint made from it."""
    from ..config import atomic_write_bytes

    for name in FILES:
        f = Path(src) / name
        if f.is_file() and f.resolve() != (Path(out) / name).resolve():
            atomic_write_bytes(Path(out) / name, f.read_bytes())


def bundled_context(ckpt_dir: Path | None, size: int, spec: Any) -> Context | None:
    """``context_frames.npy`` uint8 (T, H, W, 3) + ``context_actions.npy`` (T,) [+ ``context_axes.npy`` (T, A)]
    from a checkpoint dir, checked against the frame size and ActionSpec ``spec``.

    Loaded with ``allow_pickle=False``; a malformed file is an error naming it."""
    if ckpt_dir is None or not (ckpt_dir / FILES[0]).is_file():
        return None
    fpath, apath, xpath = (ckpt_dir / f for f in FILES)
    frames = np.load(fpath, allow_pickle=False)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (size, size, 3) or len(frames) < 1:
        raise ValueError(f"{fpath}: expected uint8 (T, {size}, {size}, 3), got {frames.dtype} {frames.shape}")
    acts = np.load(apath, allow_pickle=False) if apath.is_file() else np.zeros(len(frames), np.int64)
    if acts.shape != (len(frames),) or acts.dtype.kind not in "iu" or acts.min() < 0 or acts.max() >= spec.n:
        raise ValueError(f"{apath}: expected {len(frames)} integer actions in 0..{spec.n - 1}")
    axes = None
    if xpath.is_file() and spec.n_axes:
        raw = np.load(xpath, allow_pickle=False)
        if raw.shape != (len(frames), spec.n_axes) or raw.dtype.kind != "f":
            raise ValueError(f"{xpath}: expected float ({len(frames)}, {spec.n_axes}) axis values, got {raw.dtype} {raw.shape}")
        axes = spec.check_axes(raw, where=str(xpath))  # finite and inside each axis's range
    return Context(frames, acts.astype(np.int64), axes, "bundled context_frames.npy")


def start_context(model: Any, seed: int, actions: np.ndarray, keep_env: bool = False) -> Context:
    """Context frames for ``actions`` (T,), actions[0] = 0: a reset of the checkpoint's env stepped with them,
    else the checkpoint's bundled context, else black frames.

    The env is kept (still open) only with ``keep_env``; otherwise it is closed.
    """
    actions = np.asarray(actions, dtype=np.int64)
    env_id = str(model.config.get("env", ""))
    size, env = model.frame_size, None
    try:
        from ..data.collect import make_recorded_env

        env = make_recorded_env(model.config, frame_size=size)
        obs, _ = env.reset(seed=seed)
        spec = model.action_spec  # a Box world's context steps hold every axis at rest
        clip = np.stack([obs] + [env.step(spec.env_action(a))[0] for a in actions[1:]]).astype(np.uint8)
        if clip.shape[1:] == (size, size, 3):
            if not keep_env:
                env.close()
                env = None
            return Context(clip, actions, None, f"{env_id} reset (seed {seed})", env)
    except Exception as e:  # no such env here, or it cannot be built: try the bundled context
        log.info("context env %r unavailable: %s", env_id, e)
    if env is not None:
        env.close()
    bundled = bundled_context(model.path, size, model.action_spec)
    if bundled is not None:
        return bundled
    n = len(actions)
    return Context(np.zeros((n, size, size, 3), np.uint8), np.zeros(n, np.int64), None, "zeros (no env, no bundled context)")
