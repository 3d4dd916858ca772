"""import_videos(): videos + action logs -> dataset; bad logs name the file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from worldloom.data import Dataset, DatasetError, import_videos

iio = pytest.importorskip("imageio.v3")


def _clip(T: int, h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    """Flat-colour frames (survive GIF palettes and video codecs nearly unchanged), one per t."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (T, 3), dtype=np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (T, h, w, 3)).copy()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "videos"
    d.mkdir()
    iio.imwrite(d / "a.gif", _clip(6, seed=1), duration=100, loop=0)  # 10 fps
    (d / "a.csv").write_text("frame,action\n1,2\n2,right\n\n4,0\n")
    iio.imwrite(d / "b.gif", _clip(4, seed=2), duration=100, loop=0)
    (d / "b.jsonl").write_text('{"frame": 1, "action": "left"}\n{"frame": 3, "action": 1}\n')
    return d


NAMES = ["noop", "left", "right"]


def test_round_trip_gif(src: Path, tmp_path: Path) -> None:
    out = import_videos(src, tmp_path / "ds", frame_size=16, action_names=NAMES)
    ds = Dataset.open(out)
    ds.validate()
    m = ds.meta
    assert m["env"] == "video" and m["fps"] == 10 and m["frame_shape"] == [16, 16, 3]
    assert list(ds.action_spec.names) == NAMES
    assert [e["source"] for e in m["episodes"]] == ["a.gif", "b.gif"]
    a, b = ds[0], ds[1]
    assert a.len == 6 and b.len == 4
    np.testing.assert_array_equal(a.actions, [0, 2, 2, 0, 0, 0])  # unlogged frames -> 0
    np.testing.assert_array_equal(b.actions, [0, 1, 0, 1])
    # centre-cropped and resized flat colours come back (GIF palette: within a few levels)
    want = _clip(6, seed=1)[:, :16, :16]
    assert np.abs(a.frames.astype(int) - want.astype(int)).max() <= 8


def test_int_ids_without_names(src: Path, tmp_path: Path) -> None:
    (src / "a.csv").write_text("frame,action,t\n1,3,0.1\n")
    (src / "b.jsonl").write_text('{"frame": 2, "action": 1}\n')
    ds = Dataset.open(import_videos(src, tmp_path / "ds", frame_size=8))
    assert ds.action_spec.n == 4
    np.testing.assert_array_equal(ds[0].actions, [0, 3, 0, 0, 0, 0])


def test_mp4(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (bundled ffmpeg) needed for mp4")
    d = tmp_path / "v"
    d.mkdir()
    iio.imwrite(d / "c.mp4", _clip(8, 32, 48), plugin="FFMPEG", fps=12, macro_block_size=16)
    (d / "c.csv").write_text("frame,action\n3,1\n7,1\n")
    ds = Dataset.open(import_videos(d, tmp_path / "ds", frame_size=16))
    assert ds.meta["fps"] == 12 and len(ds) == 1 and ds[0].len == 8
    np.testing.assert_array_equal(ds[0].actions, [0, 0, 0, 1, 0, 0, 0, 1])
    want = _clip(8, 32, 48)[:, :16, :16].astype(int)
    assert np.abs(ds[0].frames.astype(int) - want).mean() < 12  # lossy codec


@pytest.mark.parametrize(
    "log_name, text, where, match",
    [
        ("a.csv", "frame,action\n1,2\n2,jump\n", "a.csv:3", "unknown action name 'jump'"),
        ("a.csv", "frame,action\n1,2\n6,1\n", "a.csv:3", "past the end of the video"),
        ("a.csv", "frame,action\n1\n", "a.csv:2", "expected 2 fields"),
        ("a.csv", "frame,action\nx,1\n", "a.csv:2", "not an int"),
        ("a.csv", "frame,action\n1,1\n1,2\n", "a.csv:3", "already has an action"),
        ("a.csv", "frame,action\n1,7\n", "a.csv:2", "out of range"),
        ("a.csv", "time,key\n1,1\n", "a.csv:1", "header"),
        ("b.jsonl", '{"frame": 1, "action": 1}\n{"frame": 2, "action": \n', "b.jsonl:2", "not valid JSON"),
        ("b.jsonl", '{"frame": 1}\n', "b.jsonl:1", "expected an object"),
    ],
)
def test_bad_logs_name_file_and_line(src: Path, tmp_path: Path, log_name: str, text: str, where: str, match: str) -> None:
    (src / log_name).write_text(text)
    with pytest.raises(DatasetError, match=match) as e:
        import_videos(src, tmp_path / "ds", frame_size=8, action_names=NAMES)
    assert where in str(e.value)


def test_missing_log_and_names_without_action_names(src: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"a\.csv:3: .*action_names"):
        import_videos(src, tmp_path / "ds", frame_size=8)
    (src / "b.jsonl").unlink()
    with pytest.raises(DatasetError, match=r"b\.gif: no action log"):
        import_videos(src, tmp_path / "ds2", frame_size=8, action_names=NAMES)
    shutil.copy(src / "a.csv", src / "a.jsonl")
    with pytest.raises(DatasetError, match="keep one action log"):
        import_videos(src, tmp_path / "ds3", frame_size=8, action_names=NAMES)


def test_a_failed_import_writes_nothing_and_keeps_the_old_dataset(src: Path, tmp_path: Path) -> None:
    """The second video's log runs past its end: found after the first episode is written, yet no partial
    dataset is left, and with --overwrite the dataset already at the path survives whole."""
    out = tmp_path / "out" / "ds"
    import_videos(src, out, frame_size=8, action_names=NAMES)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (src / "b.jsonl").write_text('{"frame": 1, "action": 1}\n{"frame": 9, "action": 2}\n')  # b.gif has 4 frames
    with pytest.raises(DatasetError, match=r"b\.jsonl:2: frame 9 is past the end of the video"):
        import_videos(src, out, frame_size=8, action_names=NAMES, overwrite=True)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["ds"]  # no staging directory left behind
    fresh = tmp_path / "out" / "fresh"
    with pytest.raises(DatasetError, match="past the end"):
        import_videos(src, fresh, frame_size=8, action_names=NAMES)
    assert not fresh.exists() and sorted(p.name for p in out.parent.iterdir()) == ["ds"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a worldloom dataset"):
        import_videos(src, mine, frame_size=8, action_names=NAMES, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    (src / "b.jsonl").write_text('{"frame": 1, "action": 1}\n')
    ds = Dataset.open(import_videos(src, out, frame_size=8, action_names=NAMES, overwrite=True))  # a good import replaces it
    assert len(ds) == 2 and ds[1].actions.tolist() == [0, 1, 0, 0]


def _mp4(path: Path, T: int, fps: int) -> np.ndarray:
    """A 40x24 mp4 whose frame t is one flat grey level (10 + 8 t): where a resampled frame came from shows."""
    levels = (10 + 8 * np.arange(T)).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (T, 24, 40, 3)).copy()
    iio.imwrite(path, frames, fps=fps, codec="libx264", plugin="FFMPEG", output_params=["-crf", "0"])
    return levels


def test_timestamped_log_is_resampled_holding_the_last_action(tmp_path: Path) -> None:
    d = tmp_path / "v"
    d.mkdir()
    levels = _mp4(d / "run.mp4", 20, fps=20)  # 1 s of video
    # right pressed at 0.12 s, left at 0.52 s, released at 0.8 s
    (d / "run.csv").write_text("time,action\n0.12,right\n0.52,left\n0.80,noop\n")
    ds = Dataset.open(import_videos(d, tmp_path / "ds", frame_size=8, fps=10, action_names=NAMES))
    ep = ds[0]
    assert ds.fps == 10 and ep.len == 10  # 20 fps -> 10 fps inside ffmpeg
    got = np.array(ep.frames)[:, 4, 4, 0].astype(int)
    assert np.abs(got - levels[::2]).max() <= 3  # frame i is the video at i / 10 s (the even source frames)
    # frame i (at i/10 s) takes the action in effect just before it: right from 0.12 s, left from 0.52 s, none from 0.8 s
    assert ep.actions.tolist() == [0, 0, 2, 2, 2, 2, 1, 1, 1, 0]


def test_a_fractional_fps_is_kept_not_rounded(tmp_path: Path) -> None:
    """At 2.5 fps frame i is at i * 0.4 s: rounded to 2 fps the actions would land on the wrong frames."""
    d = tmp_path / "v"
    d.mkdir()
    _mp4(d / "run.mp4", 20, fps=20)
    (d / "run.csv").write_text("time,action\n0.12,right\n0.52,left\n0.80,noop\n")
    ds = Dataset.open(import_videos(d, tmp_path / "ds", frame_size=8, fps=2.5, action_names=NAMES))
    assert ds.fps == 2.5 and ds.meta["fps"] == 2.5
    assert ds[0].actions.tolist()[:3] == [0, 2, 1]  # at 0, 0.4 and 0.8 s


def test_timestamped_log_past_the_video_and_bad_times_name_the_line(tmp_path: Path) -> None:
    d = tmp_path / "v"
    d.mkdir()
    _mp4(d / "run.mp4", 10, fps=10)
    (d / "run.jsonl").write_text('{"time": 0.2, "action": 1}\n{"time": 4.5, "action": 2}\n')
    with pytest.raises(DatasetError, match=r"run.jsonl:2: time 4.5 s is past the end of the video \(1 s\)"):
        import_videos(d, tmp_path / "a", frame_size=8, action_names=NAMES)
    (d / "run.jsonl").write_text('{"time": -1, "action": 1}\n')
    with pytest.raises(DatasetError, match=r"run.jsonl:1: time -1 is not a number of seconds"):
        import_videos(d, tmp_path / "b", frame_size=8, action_names=NAMES)
    (d / "run.jsonl").write_text('{"time": 0.1, "action": 1}\n{"frame": 3, "action": 1}\n')
    with pytest.raises(DatasetError, match="mixes 'frame' and 'time'"):
        import_videos(d, tmp_path / "c", frame_size=8, action_names=NAMES)
    (d / "run.jsonl").write_text('{"time": 0.1, "action": "jump"}\n')
    with pytest.raises(DatasetError, match=r"run.jsonl:1: unknown action name 'jump'"):
        import_videos(d, tmp_path / "d", frame_size=8, action_names=NAMES)


def test_a_model_of_imported_videos_plays_from_a_real_frame(tmp_path: Path) -> None:
    """No env can rebuild a video's world: the checkpoint keeps its first frames as the play context."""
    import worldloom
    from worldloom.cli import main
    from worldloom.runtime.context import start_context

    d = tmp_path / "v"
    d.mkdir()
    _mp4(d / "run.mp4", 12, fps=10)
    (d / "run.csv").write_text("time,action\n0.15,right\n")
    data = import_videos(d, tmp_path / "ds", frame_size=64, action_names=NAMES)
    assert main(["train", "tokenizer", "--preset", "tiny", "--data", str(data), "--out", str(tmp_path / "tok")]) == 0
    assert main(["train", "dynamics", "--preset", "tiny", "--data", str(data), "--tokenizer", str(tmp_path / "tok"),
                 "--out", str(tmp_path / "wm"), "--train-steps", "1"]) == 0
    model = worldloom.load(tmp_path / "wm")
    ctx = start_context(model, 0, np.zeros(4, np.int64))
    frames, actions = ctx.frames, ctx.actions
    assert ctx.source == "bundled context_frames.npy" and ctx.env is None and ctx.axes is None
    ep = Dataset.open(data)[0]
    assert np.array_equal(frames, np.array(ep.frames[:4])) and actions.tolist() == ep.actions[:4].tolist()
    assert frames.max() > 0  # a real frame, not the black fallback
    assert main(["train", "dynamics", "--preset", "tiny", "--data", str(data), "--tokenizer", str(tmp_path / "tok"),
                 "--out", str(tmp_path / "wm2"), "--context-episode", "3"]) == 2


def test_gif_with_uneven_delays_keeps_one_frame_per_image(tmp_path: Path) -> None:
    """Without --fps every decoded image is one frame (ffmpeg must not pad a GIF's long delays), so a frame log stays aligned."""
    d = tmp_path / "g"
    d.mkdir()
    frames = np.stack([np.full((24, 32, 3), 30 * i, np.uint8) for i in range(5)])
    iio.imwrite(d / "a.gif", frames, duration=[100, 300, 100, 500, 100], loop=0)
    (d / "a.csv").write_text("frame,action\n3,1\n")
    ep = Dataset.open(import_videos(d, tmp_path / "ds", frame_size=8, action_names=NAMES))[0]
    assert ep.len == 5 and np.abs(np.array(ep.frames)[:, 4, 4, 0].astype(int) - 30 * np.arange(5)).max() <= 2
    assert ep.actions.tolist() == [0, 0, 0, 1, 0]
