"""Writing a dataset (the layout is :mod:`worldloom.data.format`'s): one episode at a time, atomically.

Every call leaves a valid dataset on disk. An episode is written into a hidden temp dir under
``episodes/`` (each file fsynced) and renamed into place, then ``meta.json`` is rewritten atomically,
so a collection killed at any moment keeps the episodes it finished. The first episode fixes the
state keys; every later one must match them and the frame shape, or the call fails naming the field
and writes nothing. ``overwrite`` deletes only a directory that is a worldloom dataset already.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from worldloom.actions import ActionSpec
from worldloom.config import atomic_write_json

from .format import ACTIONS, AXES, EPISODES, FORMAT, FRAMES, META, VERSION, _NAME_RE, DatasetError, as_fps, state_file


class DatasetWriter:
    """Writes a dataset one episode at a time; every call leaves a valid dataset on disk.

    Use as a context manager or call :meth:`close`. ``overwrite=True`` replaces an existing
    worldloom dataset; a non-empty directory that is not one is never deleted.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        env: str,
        env_kwargs: Mapping[str, Any] | None,
        frame_shape: tuple[int, int, int] | list[int],
        fps: float,
        action_spec: ActionSpec,
        policy: Mapping[str, Any] | None,
        seed: int,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(out_dir)
        frame_shape = tuple(int(s) for s in frame_shape)
        if len(frame_shape) != 3 or frame_shape[2] != 3 or min(frame_shape) < 1:
            raise ValueError(f"frame_shape must be (H, W, 3), got {frame_shape}")
        fps = as_fps(fps)
        env_kwargs = dict(env_kwargs or {})
        policy = dict(policy or {})
        for what, obj in (("env_kwargs", env_kwargs), ("policy", policy)):
            try:
                json.dumps(obj)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{what} must be JSON-serialisable to go in {META}: {e}") from None
        self._prepare_dir(overwrite)
        self.frame_shape = frame_shape
        self.action_spec = action_spec
        self.meta: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "env": str(env),
            "env_kwargs": env_kwargs,
            "frame_shape": list(frame_shape),
            "fps": fps,
            "action_spec": action_spec.to_dict(),
            "policy": policy,
            "seed": int(seed),
            "n_episodes": 0,
            "n_frames": 0,
            "state_keys": [],
            "episodes": [],
        }
        self._state_keys: list[str] | None = None  # fixed by the first episode
        self._closed = False
        # Written now so that even a collection killed before its first episode leaves a valid
        # (empty) dataset, and so that `overwrite` can recognise the directory as ours later.
        atomic_write_json(self.path / META, self.meta)

    def _prepare_dir(self, overwrite: bool) -> None:
        p = self.path
        if check_replaceable(p, overwrite):
            shutil.rmtree(p / EPISODES, ignore_errors=True)
            (p / META).unlink(missing_ok=True)
        (p / EPISODES).mkdir(parents=True, exist_ok=True)

    @property
    def n_episodes(self) -> int:
        return int(self.meta["n_episodes"])

    def add_episode(
        self,
        frames: np.ndarray,
        actions: np.ndarray | list[int],
        state: Mapping[str, np.ndarray] | None = None,
        seed: int = 0,
        *,
        source: str | None = None,
        axes: np.ndarray | None = None,
    ) -> str:
        """Validate and write one episode; returns its name. ``source`` (optional) is recorded in
        the episode's ``meta.json`` entry (e.g. the video file it came from). ``axes`` (T, A): the
        continuous action values, required exactly when the ActionSpec has axes."""
        if self._closed:
            raise RuntimeError("DatasetWriter is closed")
        frames, actions, state_arrays = self._check_episode(frames, actions, state)
        axes_arr = self._check_axes(axes, len(frames))
        name = f"{self.n_episodes:06d}"
        ep_dir = self.path / EPISODES / name
        if ep_dir.exists():
            raise FileExistsError(f"{ep_dir}: episode directory already exists")
        tmp = Path(tempfile.mkdtemp(dir=self.path / EPISODES, prefix=f".tmp-{name}-"))
        try:
            _save_npy(tmp / FRAMES, frames)
            _save_npy(tmp / ACTIONS, actions)
            if axes_arr is not None:
                _save_npy(tmp / AXES, axes_arr)
            for key, arr in state_arrays.items():
                _save_npy(tmp / state_file(key), arr)
            os.replace(tmp, ep_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        entry: dict[str, Any] = {"name": name, "length": int(len(frames)), "seed": int(seed)}
        if source is not None:
            entry["source"] = str(source)
        self.meta["episodes"].append(entry)
        self.meta["n_episodes"] += 1
        self.meta["n_frames"] += int(len(frames))
        self.meta["state_keys"] = list(self._state_keys or [])
        atomic_write_json(self.path / META, self.meta)
        return name

    def _check_episode(
        self, frames: Any, actions: Any, state: Mapping[str, Any] | None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
            raise DatasetError(f"frames: expected a uint8 numpy array, got {_describe(frames)}")
        if frames.ndim != 4 or tuple(frames.shape[1:]) != self.frame_shape or len(frames) < 1:
            raise DatasetError(
                f"frames: expected shape (T>=1, {', '.join(map(str, self.frame_shape))}), got {frames.shape}"
            )
        T = len(frames)
        acts = np.asarray(actions)
        if acts.ndim != 1 or len(acts) != T:
            raise DatasetError(f"actions: expected shape ({T},) to match frames, got {acts.shape}")
        if not np.issubdtype(acts.dtype, np.integer):
            raise DatasetError(f"actions: expected integer action ids, got dtype {acts.dtype}")
        acts = acts.astype(np.int64)
        bad = np.flatnonzero((acts < 0) | (acts >= self.action_spec.n))
        if len(bad):
            t = int(bad[0])
            raise DatasetError(f"actions[{t}] = {acts[t]} is outside the ActionSpec's 0..{self.action_spec.n - 1}")
        if acts[0] != 0:
            raise DatasetError(f"actions[0] = {acts[0]}: must be 0, no action produced the first frame")

        arrays: dict[str, np.ndarray] = {}
        keys = sorted(state) if state else []
        if self._state_keys is None:
            self._state_keys = keys
        elif keys != self._state_keys:
            raise DatasetError(f"state: keys {keys} differ from the first episode's {self._state_keys}")
        for key in keys:
            if not _NAME_RE.match(key):
                raise DatasetError(f"state[{key!r}]: key must match {_NAME_RE.pattern} (it becomes a file name)")
            try:
                arr = np.asarray(state[key], dtype=np.float32)  # type: ignore[index]
            except (TypeError, ValueError) as e:
                raise DatasetError(f"state[{key!r}]: not a numeric array ({e})") from None
            if arr.ndim < 1 or len(arr) != T:
                raise DatasetError(f"state[{key!r}]: expected leading dim {T} to match frames, got {arr.shape}")
            arrays[key] = arr
        return np.ascontiguousarray(frames), acts, arrays

    def _check_axes(self, axes: Any, T: int) -> np.ndarray | None:
        spec = self.action_spec
        if axes is None:
            if spec.n_axes:
                raise DatasetError(f"axes: the ActionSpec has {spec.n_axes} axes {[a.name for a in spec.axes]}; "
                                   "give their values per step")
            return None
        if not spec.n_axes:
            raise DatasetError("axes: given, but the ActionSpec has no axes")
        arr = np.asarray(axes)
        if arr.shape != (T, spec.n_axes):
            raise DatasetError(f"axes: expected shape ({T}, {spec.n_axes}) to match frames and the ActionSpec, got {arr.shape}")
        try:
            return np.ascontiguousarray(spec.check_axes(arr, "axes"))
        except ValueError as e:
            raise DatasetError(str(e)) from None

    def close(self) -> None:
        if not self._closed:
            atomic_write_json(self.path / META, self.meta)
            self._closed = True

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_replaceable(p: Path, overwrite: bool) -> bool:
    """Whether ``p`` holds a dataset to replace (True) or is absent or empty (False); otherwise a
    FileExistsError that says why nothing will be written there."""
    if p.exists() and not p.is_dir():
        raise FileExistsError(f"{p}: exists and is not a directory")
    if not (p.is_dir() and any(p.iterdir())):
        return False
    if not overwrite:
        raise FileExistsError(
            f"{p}: directory exists and is not empty; pass overwrite=True (--overwrite) "
            "to replace the dataset in it, or choose another output directory"
        )
    if not _looks_like_dataset(p):
        # Guard against `--out ~ --overwrite`: only ever delete what we wrote.
        raise FileExistsError(
            f"{p}: not empty and not a worldloom dataset (no {META} with format {FORMAT!r}); "
            "refusing to delete it even with overwrite=True"
        )
    return True


@contextmanager
def staged_dataset(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """All or nothing: yields an empty sibling directory of ``out`` to write a whole dataset into; it
    replaces ``out`` only when the block ends without an error. On an error it is deleted and ``out``,
    an earlier dataset included, is left as it was (``overwrite`` checked up front, as DatasetWriter
    does). For imports, where a bad file found late must not cost the user an earlier dataset."""
    out = Path(out)
    check_replaceable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if out.exists():  # an empty directory or (overwrite) a dataset: moved aside, then deleted
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.replaced-"))
        os.replace(out, old / "d")
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)
        f.flush()
        # fsync before the rename in add_episode, so a crash cannot publish an episode whose
        # bytes never reached the disk.
        os.fsync(f.fileno())


def _looks_like_dataset(p: Path) -> bool:
    try:
        meta = json.loads((p / META).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"ndarray dtype={x.dtype} shape={x.shape}"
    return type(x).__name__


__all__ = ["DatasetWriter", "check_replaceable", "staged_dataset"]
