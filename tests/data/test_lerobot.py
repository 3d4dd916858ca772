"""LeRobot v3 in and out: a Box env's axes and a keyboard world's ids round-trip; resampling; clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="LeRobot datasets need pyarrow (pip install 'worldloom[lerobot]')")
pytest.importorskip("av", reason="LeRobot datasets need PyAV (pip install 'worldloom[lerobot]')")

from worldloom.cli import main  # noqa: E402
from worldloom.data import Dataset, collect  # noqa: E402
from worldloom.data.lerobot import LeRobotError, export_lerobot, import_lerobot  # noqa: E402
from worldloom.eval.metrics import psnr  # noqa: E402


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("pygame", reason="Pendulum renders with pygame")
    return collect("gym:Pendulum-v1", tmp_path_factory.mktemp("lr") / "pend", episodes=2, steps=14, progress=False)


def test_axes_round_trip_through_lerobot(pendulum: Path, tmp_path: Path) -> None:
    lr = export_lerobot(pendulum, tmp_path / "lr")
    info = json.loads((lr / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 2 and info["total_frames"] == 28
    assert info["features"]["action"] == {"dtype": "float32", "shape": [1], "names": ["axis_0"]}
    assert (lr / "videos/observation.images.main/chunk-000/file-000.mp4").is_file()
    back = Dataset.open(import_lerobot(lr, tmp_path / "back"))
    src = Dataset.open(pendulum)
    assert [(a.name, a.low, a.high) for a in back.action_spec.axes] == [("axis_0", -2.0, 2.0)]  # from stats.json
    for a, b in zip(src, back):
        assert np.allclose(a.axes, b.axes, atol=1e-6) and a.len == b.len
        assert float(np.mean(psnr(np.array(b.frames), np.array(a.frames)))) > 35  # h264 at crf 10
    # every=2: half the fps, and each kept frame's axes are the mean of the two commands that led to it
    half = Dataset.open(import_lerobot(lr, tmp_path / "half", every=2))
    assert half.fps == src.fps // 2 and half[0].len == 7
    assert np.allclose(half[0].axes[1:], (src[0].axes[1:-1:2] + src[0].axes[2::2]) / 2, atol=1e-6)
    # Any lower rate: 2/3 of the fps keeps the last frame shown at each output time (0, 1, 3, 4, 6, ...),
    # each with the mean of the commands since the kept frame before.
    two3 = Dataset.open(import_lerobot(lr, tmp_path / "two3", target_fps=src.fps * 2 / 3))
    keep = [0, 1, 3, 4, 6, 7, 9, 10, 12]  # output time 9 / 20 s is past the 14th frame (13 / 30 s)
    assert two3.fps == pytest.approx(src.fps * 2 / 3) and two3.meta["env_kwargs"]["fps"] == two3.fps
    assert np.array_equal(np.array(two3[0].frames), np.array(back[0].frames)[keep])
    assert np.allclose(two3[0].axes[1:], [src[0].axes[a + 1 : b + 1].mean(0) for a, b in zip(keep, keep[1:])], atol=1e-6)
    for kw, msg in [({"target_fps": src.fps * 2}, "must be in (0, "), ({"target_fps": 5.0, "every": 2}, "not both"),
                    ({"target_fps": src.fps / 14}, "every episode keeps fewer than 2 frames")]:
        with pytest.raises(LeRobotError, match=re.escape(msg)):
            import_lerobot(lr, tmp_path / "bad", **kw)
    assert not (tmp_path / "bad").exists()
    one = Dataset.open(import_lerobot(lr, tmp_path / "one", episodes=[1]))
    assert len(one) == 1 and np.allclose(one[0].axes, src[1].axes, atol=1e-6)
    # Without meta/stats.json the ranges are every episode's, so imports of different episodes agree.
    (lr / "meta/stats.json").unlink()
    ranges = []
    for e in (0, 1):
        d = Dataset.open(import_lerobot(lr, tmp_path / f"nostats{e}", episodes=[e]))
        ranges.append([(a.low, a.high) for a in d.action_spec.axes])
        assert d.meta["env_kwargs"]["axis_ranges_from"] == "all episodes in data/"
    every_cmd = np.concatenate([src[0].axes[1:], src[1].axes[1:]])[:, 0]
    assert ranges[0] == ranges[1] and ranges[0][0] == pytest.approx((every_cmd.min(), every_cmd.max()), abs=1e-5)


def test_discrete_ids_round_trip_and_the_cli(tmp_path: Path, capsys) -> None:
    arena = collect("arena", tmp_path / "arena", episodes=2, steps=10, progress=False)
    assert main(["export-lerobot", str(arena), "--out", str(tmp_path / "lr")]) == 0
    assert main(["import-lerobot", str(tmp_path / "lr"), "--out", str(tmp_path / "back"), "--episodes", "0:2"]) == 0
    assert "imported 2 episodes, 20 frames" in capsys.readouterr().out
    a, b = Dataset.open(arena), Dataset.open(tmp_path / "back")
    assert b.action_spec.names == a.action_spec.names and b.action_spec.n_axes == 0
    assert "ArrowUp" in b.action_spec.keys[1] and "ArrowLeft" in b.action_spec.keys[3]  # keys follow the names
    assert all(np.array_equal(x.actions, y.actions) for x, y in zip(a, b))
    assert main(["import-lerobot", str(tmp_path / "lr"), "--out", str(tmp_path / "x"), "--camera", "top"]) == 2
    assert "no video feature 'top'; cameras: ['observation.images.main']" in capsys.readouterr().err
    assert main(["import-lerobot", str(tmp_path / "lr"), "--out", str(tmp_path / "y"), "--episodes", "5"]) == 2
    assert "episodes [5] not in meta/episodes" in capsys.readouterr().err


def test_broken_datasets_name_the_file(pendulum: Path, tmp_path: Path) -> None:
    lr = export_lerobot(pendulum, tmp_path / "lr")
    info_f = lr / "meta/info.json"
    info = json.loads(info_f.read_text())
    info_f.write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(LeRobotError, match=r"info.json: codebase_version 'v2.1'; only v3"):
        import_lerobot(lr, tmp_path / "a")
    info_f.write_text(json.dumps(info))
    video = lr / "videos/observation.images.main/chunk-000/file-000.mp4"
    video.write_bytes(video.read_bytes()[: len(video.read_bytes()) // 3])  # truncated: the second episode has no frames
    with pytest.raises(LeRobotError, match="file-000.mp4"):
        import_lerobot(lr, tmp_path / "b")
    video.unlink()
    with pytest.raises(LeRobotError, match="file-000.mp4: missing"):
        import_lerobot(lr, tmp_path / "c")
    with pytest.raises(LeRobotError, match="not a LeRobot dataset"):
        import_lerobot(tmp_path, tmp_path / "d")
    with pytest.raises(LeRobotError, match="exists and is not empty"):
        export_lerobot(pendulum, lr)


def test_a_single_action_world_round_trips(tmp_path: Path) -> None:
    """phys2d (one no-op action, no axes) still writes action.id, so its export imports back."""
    src = Dataset.open(collect("phys2d", tmp_path / "p", episodes=1, steps=8, progress=False))
    back = Dataset.open(import_lerobot(export_lerobot(src.path, tmp_path / "lr"), tmp_path / "b"))
    assert back.action_spec.names == ("noop",) and back[0].len == 8 and back.action_spec.n_axes == 0


def test_a_fractional_fps_round_trips(tmp_path: Path) -> None:
    """At 2.5 fps the video's frame times must be the data's (i / 2.5 s): a rate rounded to 2 or 3 fps would
    put later frames outside their episode's span, and the import would find none there."""
    from worldloom.actions import ActionSpec
    from worldloom.data.writer import DatasetWriter

    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "src", env="x", env_kwargs={}, frame_shape=(16, 16, 3), fps=2.5,
                       action_spec=ActionSpec(names=("noop", "go")), policy=None, seed=0) as w:
        for _ in range(3):
            w.add_episode(np.repeat(rng.integers(0, 256, (30, 1, 1, 3), dtype=np.uint8), 16, 1).repeat(16, 2),
                          rng.integers(0, 2, 30))
    lr = export_lerobot(tmp_path / "src", tmp_path / "lr")
    assert json.loads((lr / "meta/info.json").read_text())["fps"] == 2.5
    back = Dataset.open(import_lerobot(lr, tmp_path / "back", frame_size=16))
    assert back.fps == 2.5 and [e.len for e in back] == [30, 30, 30]
    for a, b in zip(Dataset.open(tmp_path / "src"), back):
        assert np.array_equal(a.actions[1:], b.actions[1:])
        assert float(np.mean(psnr(np.array(b.frames), np.array(a.frames)))) > 30  # each frame where it belongs
