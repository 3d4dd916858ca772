"""The on-disk dataset: episodes of frames, actions and ground-truth state (see docs/DATA.md).

Layout::

    <dataset>/meta.json                      what, how many, and the ActionSpec
    <dataset>/episodes/<name>/frames.npy     uint8   (T, H, W, 3)
    <dataset>/episodes/<name>/actions.npy    int64   (T,)
    <dataset>/episodes/<name>/axes.npy       float32 (T, A)      continuous action values, if the ActionSpec has axes
    <dataset>/episodes/<name>/state.<key>.npy float32 (T, ...)   one per state key, if any

Design choices:

- Plain (uncompressed) ``.npy`` per array, so that a trainer memory-maps them and reads only the
  windows it samples; the OS page cache does the rest. No pickle anywhere (``allow_pickle=False``).
- Alignment: ``frames[0]`` is the reset observation and ``actions[0] == 0`` (nothing produced it);
  ``actions[t]`` is the action taken at step ``t`` that turned ``frames[t-1]`` into ``frames[t]``.
  ``axes[t]`` (raw values, inside each axis's range) is the continuous part of the same action;
  ``axes[0]`` produced nothing and collectors write the axes' rest values there. States are aligned
  with frames.
- Atomic writes: an episode is written into a hidden temp dir under ``episodes/`` and renamed into
  place, then ``meta.json`` is rewritten atomically. A collection killed at any moment leaves a valid
  dataset of the episodes it finished (plus, at worst, an ignored ``episodes/.tmp-*`` dir).
- ``meta.json`` is the source of truth: only episodes listed there exist. Loading checks every field
  and, per episode, every file's header (dtype, shape, size on disk) against it, and names the file at
  fault. Frame pixels are never read until asked for.
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldloom.actions import ActionSpec
from worldloom.config import read_json

FORMAT = "worldloom-dataset"
VERSION = 1
META = "meta.json"
EPISODES = "episodes"
FRAMES = "frames.npy"
ACTIONS = "actions.npy"
AXES = "axes.npy"

# Episode names and state keys become file names: keep them boring.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# Enough open episodes for random-window training without exhausting file descriptors (each
# memory map holds one) on datasets of many thousands of episodes.
_MAX_OPEN_EPISODES = 128


class DatasetError(ValueError):
    """A dataset on disk (or an episode handed to the writer) is not what it should be.

    The message always starts with the file (or ``meta.json: <field>``) at fault.
    """


def state_file(key: str) -> str:
    return f"state.{key}.npy"


@dataclass
class Episode:
    """One episode. Arrays are read-only memory maps: slice them, copy what you keep."""

    name: str
    frames: np.ndarray
    """uint8 (T, H, W, 3); ``frames[0]`` is the reset observation."""
    actions: np.ndarray
    """int64 (T,); ``actions[t]`` produced ``frames[t]`` from ``frames[t-1]``; ``actions[0] == 0``."""
    state: dict[str, np.ndarray] = field(default_factory=dict)
    """float32 (T, ...) per state key, aligned with frames; empty for envs without state."""
    len: int = 0
    """Number of frames T."""
    seed: int = 0
    """Seed the env and policy were reset with."""
    axes: np.ndarray | None = None
    """float32 (T, A) continuous action values (raw, in each axis's range); None if the ActionSpec has no axes."""

    def __len__(self) -> int:
        return self.len


# ---------------------------------------------------------------------------------------------- read


def as_fps(fps: Any) -> float:
    """A dataset's frame rate: a positive finite number, kept as an int when it is whole (10, not 10.0),
    else as given (10/3 stays 3.333..., an NTSC video's 29.97 stays 29.97); else a ``ValueError``."""
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps must be a positive number, got {fps!r}") from None
    if isinstance(fps, bool) or not math.isfinite(f) or f <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return int(round(f)) if abs(f - round(f)) < 1e-9 else f


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class Dataset:
    """A dataset opened for reading. Episodes are memory-mapped lazily, on first access.

    ``Dataset.open(path)`` checks ``meta.json`` and that every episode directory exists; each
    episode's files are checked (header, dtype, shape, size) when it is first opened, or all at
    once by :meth:`validate`.
    """

    def __init__(self, path: Path, meta: dict[str, Any], action_spec: ActionSpec) -> None:
        self.path = path
        self.meta = meta
        self.action_spec = action_spec
        self.frame_shape: tuple[int, int, int] = tuple(meta["frame_shape"])  # type: ignore[assignment]
        self.fps: float = meta["fps"]
        self.state_keys: list[str] = list(meta["state_keys"])
        self.episodes: list[dict[str, Any]] = meta["episodes"]
        self.lengths = np.array([e["length"] for e in self.episodes], dtype=np.int64)
        self._open: OrderedDict[int, Episode] = OrderedDict()
        self._window_cache: dict[int, np.ndarray] = {}

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike) -> Dataset:
        path = Path(path)
        meta_path = path / META
        if not path.is_dir():
            raise DatasetError(f"{path}: dataset directory not found")
        try:
            meta = read_json(meta_path)
        except FileNotFoundError:
            raise DatasetError(f"{meta_path}: missing (not a worldloom dataset?)") from None
        except (ValueError, OSError, UnicodeDecodeError) as e:
            raise DatasetError(f"{meta_path}: cannot read ({e})") from None
        action_spec = _check_meta(meta, meta_path)
        for e in meta["episodes"]:
            ep_dir = path / EPISODES / e["name"]
            if not ep_dir.is_dir():
                raise DatasetError(f"{ep_dir}: episode directory listed in {META} is missing")
        return cls(path, meta, action_spec)

    def _load_episode(self, i: int) -> Episode:
        info = self.episodes[i]
        ep_dir = self.path / EPISODES / info["name"]
        T = info["length"]
        frames = _load_checked(ep_dir / FRAMES, np.uint8, (T, *self.frame_shape))
        actions = _load_checked(ep_dir / ACTIONS, np.int64, (T,))
        # Actions are tiny; checking their range here catches a dataset/ActionSpec mismatch
        # before it becomes an index error deep inside an embedding layer.
        bad = np.flatnonzero((actions < 0) | (actions >= self.action_spec.n))
        if len(bad):
            t = int(bad[0])
            raise DatasetError(
                f"{ep_dir / ACTIONS}: actions[{t}] = {actions[t]} is outside the ActionSpec's 0..{self.action_spec.n - 1}"
            )
        state = {k: _load_checked(ep_dir / state_file(k), np.float32, (T, None)) for k in self.state_keys}
        axes = None
        if self.action_spec.n_axes:
            axes = _load_checked(ep_dir / AXES, np.float32, (T, self.action_spec.n_axes))
            try:
                self.action_spec.check_axes(axes, str(ep_dir / AXES))
            except ValueError as e:
                raise DatasetError(str(e)) from None
        return Episode(name=info["name"], frames=frames, actions=actions, state=state, len=T, seed=info["seed"], axes=axes)

    # -- access ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, i: int) -> Episode:
        n = len(self.episodes)
        if not -n <= i < n:
            raise IndexError(f"episode index {i} out of range for a dataset of {n} episodes")
        i %= n
        ep = self._open.get(i)
        if ep is None:
            ep = self._load_episode(i)
            self._open[i] = ep
            if len(self._open) > _MAX_OPEN_EPISODES:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(i)
        return ep

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self[i]

    @property
    def n_frames(self) -> int:
        return int(self.meta["n_frames"])

    @property
    def env(self) -> str:
        return str(self.meta["env"])

    def validate(self) -> None:
        """Check every episode's files now (header, dtype, shape, size, action range)."""
        for i in range(len(self)):
            self._load_episode(i)

    def sample_window(self, rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        """A random window of ``length`` consecutive frames inside one episode.

        Uniform over all valid windows of the dataset, i.e. episodes are weighted by their number
        of windows (``T - length + 1``). Returns in-memory copies ``(frames (length, H, W, 3) uint8,
        actions (length,) int64, episode_index, start)``.
        """
        if length < 1:
            raise ValueError(f"window length must be >= 1, got {length}")
        cum = self._window_cache.get(length)
        if cum is None:
            cum = np.cumsum(np.maximum(self.lengths - length + 1, 0))
            self._window_cache[length] = cum
        total = int(cum[-1]) if len(cum) else 0
        if total == 0:
            longest = int(self.lengths.max()) if len(self.lengths) else 0
            raise ValueError(f"{self.path}: no episode has {length} frames (longest has {longest})")
        k = int(rng.integers(total))
        ep_i = int(np.searchsorted(cum, k, side="right"))
        start = k - (int(cum[ep_i - 1]) if ep_i else 0)
        ep = self[ep_i]
        frames = np.array(ep.frames[start : start + length])
        actions = np.array(ep.actions[start : start + length])
        return frames, actions, ep_i, start

    def iter_frames(self, batch: int) -> Iterator[np.ndarray]:
        """All frames in dataset order, in uint8 batches (B<=batch, H, W, 3) that may span episodes."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        buf: list[np.ndarray] = []
        have = 0
        for ep in self:
            t = 0
            while t < ep.len:
                take = min(batch - have, ep.len - t)
                buf.append(np.asarray(ep.frames[t : t + take]))
                have += take
                t += take
                if have == batch:
                    yield np.concatenate(buf)
                    buf, have = [], 0
        if have:
            yield np.concatenate(buf)

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps would pickle as full copies; DataLoader workers reopen what they need.
        d = self.__dict__.copy()
        d["_open"] = OrderedDict()
        return d

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, env={self.env!r}, episodes={len(self)}, frames={self.n_frames})"


def _load_checked(path: Path, dtype: type, shape: tuple[int | None, ...]) -> np.ndarray:
    """Memory-map one ``.npy`` and check it; ``None`` in ``shape`` means "any (further) dims"."""
    _check_npy_header(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (OSError, ValueError, EOFError) as e:
        raise DatasetError(f"{path}: not a readable .npy file (corrupt?): {e}") from None
    if arr.dtype != np.dtype(dtype):
        raise DatasetError(f"{path}: dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if shape[-1] is None:
        fixed = shape[:-1]
        ok = arr.ndim >= len(fixed) and tuple(arr.shape[: len(fixed)]) == fixed
    else:
        ok = tuple(arr.shape) == shape
    if not ok:
        want = ", ".join("..." if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "")
        raise DatasetError(f"{path}: shape {tuple(arr.shape)}, expected ({want}) from {META} (length {shape[0]})")
    return arr


def _check_npy_header(path: Path) -> None:
    """Read a ``.npy`` header ourselves, to say *what* is wrong (numpy's own errors mislead:
    garbage bytes come out as "contains pickled data")."""
    npy = np.lib.format
    try:
        with open(path, "rb") as f:
            try:
                version = npy.read_magic(f)
            except ValueError:
                raise DatasetError(f"{path}: not a .npy file (bad magic bytes; corrupt?)") from None
            try:
                if version == (1, 0):
                    shape, _, dtype = npy.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = npy.read_array_header_2_0(f)
                else:  # 3.0 (utf-8 field names; we never write it): leave it to np.load
                    return
            except (ValueError, SyntaxError, EOFError) as e:
                raise DatasetError(f"{path}: corrupt .npy header ({e})") from None
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    if dtype.hasobject:
        raise DatasetError(f"{path}: holds Python objects (dtype {dtype}); refusing to unpickle")
    want = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < want:
        raise DatasetError(f"{path}: truncated: {size} bytes, its header needs {want} for {dtype} {shape}")


def _check_meta(meta: Any, where: Path) -> ActionSpec:
    """Check every field of ``meta.json``; returns its ActionSpec."""

    def fail(field_: str, msg: str) -> DatasetError:
        return DatasetError(f"{where}: field {field_!r} {msg}")

    if not isinstance(meta, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    required: dict[str, tuple[type, ...]] = {
        "format": (str,),
        "version": (int,),
        "env": (str,),
        "env_kwargs": (dict,),
        "frame_shape": (list,),
        "fps": (int, float),
        "action_spec": (dict,),
        "policy": (dict,),
        "seed": (int,),
        "n_episodes": (int,),
        "n_frames": (int,),
        "state_keys": (list,),
        "episodes": (list,),
    }
    for key, types in required.items():
        if key not in meta:
            raise fail(key, "is missing")
        v = meta[key]
        if not isinstance(v, types) or (types == (int,) and not _is_int(v)):
            what = "a number" if types == (int, float) else types[0].__name__
            raise fail(key, f"must be {what}, got {type(v).__name__} {v!r:.60}")
    if meta["format"] != FORMAT:
        raise fail("format", f"is {meta['format']!r}, expected {FORMAT!r}")
    if meta["version"] != VERSION:
        newer = " (written by a newer worldloom?)" if meta["version"] > VERSION else ""
        raise fail("version", f"is {meta['version']}, this worldloom reads version {VERSION}{newer}")
    fs = meta["frame_shape"]
    if len(fs) != 3 or not all(_is_int(s) and s > 0 for s in fs) or fs[2] != 3:
        raise fail("frame_shape", f"must be [H, W, 3] with positive ints, got {fs}")
    if isinstance(meta["fps"], bool) or not math.isfinite(meta["fps"]) or meta["fps"] <= 0:
        raise fail("fps", f"must be a positive number, got {meta['fps']}")
    try:
        spec = ActionSpec.from_dict(meta["action_spec"])
    except (ValueError, TypeError, KeyError) as e:
        raise fail("action_spec", f"is invalid: {e}") from None
    for k in meta["state_keys"]:
        if not isinstance(k, str) or not _NAME_RE.match(k):
            raise fail("state_keys", f"has an invalid key {k!r}")
    names: set[str] = set()
    total = 0
    for j, e in enumerate(meta["episodes"]):
        f = f"episodes[{j}]"
        if not isinstance(e, dict):
            raise fail(f, f"must be an object, got {type(e).__name__}")
        for key in ("name", "length", "seed"):
            if key not in e:
                raise fail(f"{f}.{key}", "is missing")
        if not isinstance(e["name"], str) or not _NAME_RE.match(e["name"]):
            raise fail(f"{f}.name", f"is not a valid episode name: {e['name']!r}")
        if e["name"] in names:
            raise fail(f"{f}.name", f"repeats episode {e['name']!r}")
        names.add(e["name"])
        if not _is_int(e["length"]) or e["length"] < 1:
            raise fail(f"{f}.length", f"must be a positive int, got {e['length']!r}")
        if not _is_int(e["seed"]):
            raise fail(f"{f}.seed", f"must be an int, got {e['seed']!r}")
        total += e["length"]
    if meta["n_episodes"] != len(meta["episodes"]):
        raise fail("n_episodes", f"is {meta['n_episodes']} but {len(meta['episodes'])} episodes are listed")
    if meta["n_frames"] != total:
        raise fail("n_frames", f"is {meta['n_frames']} but the listed episodes have {total} frames")
    return spec
