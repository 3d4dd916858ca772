"""Dataset format: round trip, corrupt-file errors that name the file, atomic/refusing writes, windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worldloom.actions import ActionSpec
from worldloom.data.format import Dataset, DatasetError
from worldloom.data.writer import DatasetWriter

H = W = 8
SPEC = ActionSpec(names=("noop", "left", "right"))
LENGTHS = (5, 9, 3)


def _episode(T: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    actions = rng.integers(0, SPEC.n, T).astype(np.int64)
    actions[0] = 0
    state = {
        "agent_pos": rng.normal(size=(T, 2)).astype(np.float32),
        "ball_pos": rng.normal(size=(T, 4, 2)).astype(np.float32),
    }
    return frames, actions, state


def _writer(path: Path, action_spec: ActionSpec = SPEC, **kw: object) -> DatasetWriter:
    return DatasetWriter(
        path,
        env="arena",
        env_kwargs={"n_balls": 4},
        frame_shape=(H, W, 3),
        fps=15,
        action_spec=action_spec,
        policy={"name": "momentum"},
        seed=7,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def ds_path(tmp_path: Path) -> Path:
    path = tmp_path / "ds"
    with _writer(path) as w:
        for i, T in enumerate(LENGTHS):
            assert w.add_episode(*_episode(T, i), seed=7 + i) == f"{i:06d}"
    return path


def test_round_trip(ds_path: Path) -> None:
    ds = Dataset.open(ds_path)
    ds.validate()
    assert len(ds) == 3
    assert ds.n_frames == sum(LENGTHS)
    assert ds.action_spec == SPEC
    assert ds.frame_shape == (H, W, 3)
    m = ds.meta
    assert m["format"] == "worldloom-dataset" and m["version"] == 1
    assert m["env"] == "arena" and m["env_kwargs"] == {"n_balls": 4}
    assert m["fps"] == 15 and m["seed"] == 7 and m["policy"] == {"name": "momentum"}
    assert m["n_episodes"] == 3 and m["state_keys"] == ["agent_pos", "ball_pos"]
    assert [e["length"] for e in m["episodes"]] == list(LENGTHS)
    assert [e["seed"] for e in m["episodes"]] == [7, 8, 9]
    for i, T in enumerate(LENGTHS):
        frames, actions, state = _episode(T, i)
        ep = ds[i]
        assert ep.name == f"{i:06d}" and ep.len == len(ep) == T and ep.seed == 7 + i
        assert isinstance(ep.frames, np.memmap)  # streamed, not loaded
        np.testing.assert_array_equal(ep.frames, frames)
        np.testing.assert_array_equal(ep.actions, actions)
        assert ep.actions.dtype == np.int64
        for k in state:
            np.testing.assert_array_equal(ep.state[k], state[k])
            assert ep.state[k].dtype == np.float32
    assert ds[-1].name == "000002"
    with pytest.raises(IndexError):
        ds[3]
    batches = list(ds.iter_frames(4))
    assert [len(b) for b in batches] == [4, 4, 4, 4, 1]
    np.testing.assert_array_equal(np.concatenate(batches), np.concatenate([ds[i].frames for i in range(3)]))


def test_no_state_and_empty_dataset(tmp_path: Path) -> None:
    with _writer(tmp_path / "a") as w:
        pass
    ds = Dataset.open(tmp_path / "a")
    assert len(ds) == 0 and ds.n_frames == 0
    with pytest.raises(ValueError, match="no episode"):
        ds.sample_window(np.random.default_rng(0), 2)
    with _writer(tmp_path / "b") as w:
        f, a, _ = _episode(4, 0)
        w.add_episode(f, a, None, seed=0)
    ds = Dataset.open(tmp_path / "b")
    assert ds.state_keys == [] and ds[0].state == {}


def test_refuses_existing_dataset_without_overwrite(ds_path: Path, tmp_path: Path) -> None:
    before = (ds_path / "meta.json").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        _writer(ds_path)
    assert (ds_path / "meta.json").read_bytes() == before
    Dataset.open(ds_path).validate()
    # overwrite replaces it
    with _writer(ds_path, overwrite=True) as w:
        w.add_episode(*_episode(2, 0), seed=0)
    ds = Dataset.open(ds_path)
    assert len(ds) == 1 and not (ds_path / "episodes" / "000001").exists()
    # ... but never a directory that is not a dataset
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a worldloom dataset"):
        _writer(other, overwrite=True)
    assert (other / "notes.txt").read_text() == "precious"


def test_interrupted_collection_leaves_valid_dataset(tmp_path: Path) -> None:
    w = _writer(tmp_path / "ds")
    w.add_episode(*_episode(4, 0), seed=0)
    # A crash mid-episode leaves a temp dir that the dataset ignores; no close() either.
    (tmp_path / "ds" / "episodes" / ".tmp-000001-xyz").mkdir()
    ds = Dataset.open(tmp_path / "ds")
    ds.validate()
    assert len(ds) == 1


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda f, a, s: (f[:, :4], a, s), "frames: expected shape"),
        (lambda f, a, s: (f.astype(np.float32), a, s), "uint8"),
        (lambda f, a, s: (f, a[:-1], s), "actions: expected shape"),
        (lambda f, a, s: (f, a + 10, s), "outside the ActionSpec"),
        (lambda f, a, s: (f, np.r_[1, a[1:]], s), "actions\\[0\\]"),
        (lambda f, a, s: (f, a, {"agent_pos": s["agent_pos"][:-1]}), "state\\['agent_pos'\\]"),
    ],
)
def test_writer_validates(tmp_path: Path, bad, match: str) -> None:  # type: ignore[no-untyped-def]
    with _writer(tmp_path / "ds") as w:
        with pytest.raises(DatasetError, match=match):
            w.add_episode(*bad(*_episode(5, 0)), seed=0)
    assert len(Dataset.open(tmp_path / "ds")) == 0


def test_writer_requires_same_state_keys(tmp_path: Path) -> None:
    with _writer(tmp_path / "ds") as w:
        w.add_episode(*_episode(3, 0), seed=0)
        f, a, s = _episode(3, 1)
        with pytest.raises(DatasetError, match="keys"):
            w.add_episode(f, a, {"agent_pos": s["agent_pos"]}, seed=1)


# ----------------------------------------------------------------------------------- corrupt files


def _open_all(path: Path) -> None:
    Dataset.open(path).validate()


def test_truncated_frames(ds_path: Path) -> None:
    f = ds_path / "episodes" / "000001" / "frames.npy"
    f.write_bytes(f.read_bytes()[:-100])
    ds = Dataset.open(ds_path)  # lazily: episode files are not touched yet
    ds[0]
    with pytest.raises(DatasetError, match=r"000001/frames\.npy"):
        ds[1]
    with pytest.raises(DatasetError, match=r"000001/frames\.npy"):
        ds.validate()


def test_garbage_actions(ds_path: Path) -> None:
    (ds_path / "episodes" / "000000" / "actions.npy").write_bytes(b"\x00garbage" * 16)
    with pytest.raises(DatasetError, match=r"000000/actions\.npy"):
        _open_all(ds_path)


def test_missing_episode_dir(ds_path: Path) -> None:
    import shutil

    shutil.rmtree(ds_path / "episodes" / "000002")
    with pytest.raises(DatasetError, match=r"episodes/000002"):
        Dataset.open(ds_path)


def test_missing_state_file(ds_path: Path) -> None:
    (ds_path / "episodes" / "000000" / "state.ball_pos.npy").unlink()
    with pytest.raises(DatasetError, match=r"000000/state\.ball_pos\.npy"):
        _open_all(ds_path)


def test_meta_not_json(ds_path: Path) -> None:
    (ds_path / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"meta\.json"):
        Dataset.open(ds_path)


def test_meta_missing_action_spec(ds_path: Path) -> None:
    meta = json.loads((ds_path / "meta.json").read_text())
    del meta["action_spec"]
    (ds_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"meta\.json.*action_spec.*missing"):
        Dataset.open(ds_path)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("fps", "15", "'fps' must be a number"),
        ("fps", -2.5, "'fps' must be a positive number"),
        ("frame_shape", [8, 8], "frame_shape"),
        ("version", 2, "newer"),
        ("n_frames", 1, "n_frames"),
        ("action_spec", {"keys": []}, "action_spec"),
    ],
)
def test_meta_bad_fields(ds_path: Path, field: str, value: object, match: str) -> None:
    meta = json.loads((ds_path / "meta.json").read_text())
    meta[field] = value
    (ds_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=match) as e:
        Dataset.open(ds_path)
    assert "meta.json" in str(e.value)


def test_length_mismatch_frames_vs_actions(ds_path: Path) -> None:
    ep = ds_path / "episodes" / "000001"
    np.save(ep / "actions.npy", np.zeros(LENGTHS[1] - 2, dtype=np.int64))
    with pytest.raises(DatasetError, match=r"000001/actions\.npy.*shape"):
        _open_all(ds_path)


def test_wrong_dtype(ds_path: Path) -> None:
    ep = ds_path / "episodes" / "000000"
    np.save(ep / "actions.npy", np.zeros(LENGTHS[0], dtype=np.int32))
    with pytest.raises(DatasetError, match=r"000000/actions\.npy.*dtype"):
        _open_all(ds_path)


def test_pickled_file_is_refused(ds_path: Path) -> None:
    ep = ds_path / "episodes" / "000000"
    np.save(ep / "actions.npy", np.array([{"evil": 1}] * LENGTHS[0], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match=r"000000/actions\.npy"):
        _open_all(ds_path)


# ------------------------------------------------------------------------------------------ windows


def test_sample_window_stays_inside_episodes(ds_path: Path) -> None:
    ds = Dataset.open(ds_path)
    rng = np.random.default_rng(0)
    counts = np.zeros(3, dtype=int)
    for _ in range(400):
        frames, actions, ep_i, start = ds.sample_window(rng, 4)
        assert frames.shape == (4, H, W, 3) and frames.dtype == np.uint8
        assert actions.shape == (4,) and actions.dtype == np.int64
        assert not isinstance(frames, np.memmap)
        assert 0 <= start and start + 4 <= LENGTHS[ep_i]
        np.testing.assert_array_equal(frames, ds[ep_i].frames[start : start + 4])
        np.testing.assert_array_equal(actions, ds[ep_i].actions[start : start + 4])
        counts[ep_i] += 1
    # Weighted by windows: 2 in episode 0, 6 in episode 1, none in the 3-frame episode 2.
    assert counts[2] == 0
    assert 0.15 < counts[0] / 400 < 0.35
    with pytest.raises(ValueError, match="longest has 9"):
        ds.sample_window(rng, 10)


def test_dataset_pickles_without_copying_frames(ds_path: Path) -> None:
    import pickle

    ds = Dataset.open(ds_path)
    ds[0], ds[1]
    blob = pickle.dumps(ds)
    assert len(blob) < 10_000
    ds2 = pickle.loads(blob)
    np.testing.assert_array_equal(ds2[1].frames, ds[1].frames)


def test_continuous_axes_round_trip_and_errors(tmp_path: Path) -> None:
    from worldloom.actions import Axis

    spec = ActionSpec(names=("noop",), axes=(Axis("torque", -2.0, 2.0, "N m"),))
    frames = np.zeros((4, H, W, 3), np.uint8)
    axes = np.array([[0.0], [1.5], [-2.0], [2.0]], np.float32)
    path = tmp_path / "box"
    with _writer(path, action_spec=spec) as w:
        w.add_episode(frames, np.zeros(4, np.int64), axes=axes)
        with pytest.raises(DatasetError, match=r"axes: the ActionSpec has 1 axes \['torque'\]"):
            w.add_episode(frames, np.zeros(4, np.int64))
        with pytest.raises(DatasetError, match="axis 'torque' value 2.5 at index"):
            w.add_episode(frames, np.zeros(4, np.int64), axes=axes + 0.5)
        with pytest.raises(DatasetError, match=r"expected shape \(4, 1\)"):
            w.add_episode(frames, np.zeros(4, np.int64), axes=axes[:3])
    ds = Dataset.open(path)
    assert ds.action_spec == spec and len(ds) == 1 and np.array_equal(ds[0].axes, axes)
    # An axes file edited out of range after writing is refused on load, naming the file.
    bad = path / "episodes" / "000000" / "axes.npy"
    np.save(bad, axes * 2)
    with pytest.raises(DatasetError, match=f"{bad}: axis 'torque' value 3.0"):
        Dataset.open(path)[0]
    with _writer(tmp_path / "plain") as w:  # a discrete world takes no axes
        with pytest.raises(DatasetError, match="has no axes"):
            w.add_episode(frames, np.zeros(4, np.int64), axes=axes)
