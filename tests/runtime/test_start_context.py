"""Where a rollout starts: a checkpoint's bundled context keeps its frames, actions and axis values."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from worldloom.actions import ActionSpec, Axis
from worldloom.data.format import Dataset
from worldloom.data.writer import DatasetWriter
from worldloom.runtime.context import bundled_context, save_context, start_context

SPEC = ActionSpec(names=("none",), axes=(Axis("torque", -2.0, 2.0, "N m"),))


def _dataset(path: Path, spec: ActionSpec = SPEC, axes: bool = True) -> Dataset:
    rng = np.random.default_rng(0)
    with DatasetWriter(path, env="no-such-env", env_kwargs={}, frame_shape=(16, 16, 3), fps=10, action_spec=spec,
                       policy=None, seed=0) as w:
        w.add_episode(rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8), np.zeros(6, np.int64),
                      axes=rng.uniform(-2, 2, (6, 1)).astype(np.float32) if axes else None)
    return Dataset.open(path)


def test_axes_are_stored_and_started_from(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "data")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_context(ckpt, ds)
    ctx = bundled_context(ckpt, 16, SPEC)
    assert ctx is not None and ctx.frames.shape == (4, 16, 16, 3)
    assert np.array_equal(ctx.axes, np.asarray(ds[0].axes[:4], np.float32))  # the arm's real motion, not at rest
    # A model whose env cannot be built here starts from them (what play and bench do).
    model = SimpleNamespace(config={"env": "no-such-env"}, frame_size=16, action_spec=SPEC, path=ckpt)
    started = start_context(model, seed=0, actions=np.zeros(4, np.int64))
    assert started.source.startswith("bundled") and np.array_equal(started.axes, ctx.axes)


def test_bad_axes_file_names_itself_and_a_stale_one_is_removed(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_context(ckpt, _dataset(tmp_path / "data"))
    np.save(ckpt / "context_axes.npy", np.full((4, 1), 5.0, np.float32))  # outside [-2, 2]
    with pytest.raises(ValueError, match="context_axes.npy.*torque"):
        bundled_context(ckpt, 16, SPEC)
    np.save(ckpt / "context_axes.npy", np.zeros((3, 1), np.float32))  # one row short
    with pytest.raises(ValueError, match="context_axes.npy"):
        bundled_context(ckpt, 16, SPEC)
    # Retrained into the same directory on a dataset without axes: the old axes do not linger.
    keys = ActionSpec(names=("noop", "left"))
    save_context(ckpt, _dataset(tmp_path / "keys", keys, axes=False))
    assert not (ckpt / "context_axes.npy").exists()
    assert bundled_context(ckpt, 16, keys).axes is None
