"""Where a rollout starts: context frames from a real reset of the checkpoint's env.

One function serves play (which keeps the env for the truth view) and bench: reset the env the
checkpoint was trained on with a seed and step it with the given context actions; where that env
cannot be built here, use the ``context_frames.npy`` / ``context_actions.npy`` bundled with the
checkpoint (never unpickled), else black frames. ``source`` says which, for reports.

Every training command writes that pair into the checkpoint it makes (:func:`save_context`: the
first ``CONTEXT`` frames of one training episode, the dataset's first by default), so a model of
imported videos or a LeRobot dataset, whose env exists nowhere, starts play from a real frame.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CONTEXT = 4  # frames a play session or a bench starts from
FILES = ("context_frames.npy", "context_actions.npy")


def save_context(out: str | Path, ds: Any, episode: int = 0, n: int = CONTEXT) -> None:
    """Store the first ``n`` frames and actions of episode ``episode`` of dataset ``ds`` in checkpoint ``out``."""
    from ..config import atomic_write_bytes

    if not 0 <= episode < len(ds):
        raise ValueError(f"context episode {episode}: the dataset has episodes 0..{len(ds) - 1}")
    ep = ds[episode]
    k = min(n, ep.len)
    for name, arr in zip(FILES, (np.array(ep.frames[:k]), np.array(ep.actions[:k]))):
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


def bundled_context(ckpt_dir: Path | None, size: int, n_actions: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``context_frames.npy`` uint8 (T, H, W, 3) + ``context_actions.npy`` (T,) from a checkpoint dir.

    Loaded with ``allow_pickle=False``; a malformed pair is an error naming the file."""
    if ckpt_dir is None or not (ckpt_dir / "context_frames.npy").is_file():
        return None
    fpath, apath = ckpt_dir / "context_frames.npy", ckpt_dir / "context_actions.npy"
    frames = np.load(fpath, allow_pickle=False)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (size, size, 3) or len(frames) < 1:
        raise ValueError(f"{fpath}: expected uint8 (T, {size}, {size}, 3), got {frames.dtype} {frames.shape}")
    acts = np.load(apath, allow_pickle=False) if apath.is_file() else np.zeros(len(frames), np.int64)
    if acts.shape != (len(frames),) or acts.dtype.kind not in "iu" or acts.min() < 0 or acts.max() >= n_actions:
        raise ValueError(f"{apath}: expected {len(frames)} integer actions in 0..{n_actions - 1}")
    return frames, acts.astype(np.int64)


def start_context(model: Any, seed: int, actions: np.ndarray, keep_env: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, str, Any]:
    """(frames (T, H, W, 3) uint8, actions (T,), source, env or None) for ``actions`` (T,), actions[0] = 0.

    The env is returned (still open) only with ``keep_env``; otherwise it is closed.
    """
    actions = np.asarray(actions, dtype=np.int64)
    env_id = str(model.config.get("env", ""))
    size, env = model.frame_size, None
    try:
        from ..data.collect import make_recorded_env

        env = make_recorded_env(model.config, frame_size=size)
        obs, _ = env.reset(seed=seed)
        spec = model.action_spec  # a Box world's context steps hold every axis at rest
        clip = np.stack([obs] + [env.step(spec.rest_axes() if spec.n_axes else int(a))[0] for a in actions[1:]]).astype(np.uint8)
        if clip.shape[1:] == (size, size, 3):
            if not keep_env:
                env.close()
                env = None
            return clip, actions, f"{env_id} reset (seed {seed})", env
    except Exception as e:  # no such env here, or it cannot be built: try the bundled context
        log.info("context env %r unavailable: %s", env_id, e)
    if env is not None:
        env.close()
    bundled = bundled_context(model.path, size, model.action_spec.n)
    if bundled is not None:
        return bundled[0], bundled[1], "bundled context_frames.npy", None
    n = len(actions)
    return np.zeros((n, size, size, 3), np.uint8), np.zeros(n, np.int64), "zeros (no env, no bundled context)", None
