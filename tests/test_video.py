"""worldloom.video: the one writer of GIF and MP4 files (generate, the eval report, /record, tools)."""

from __future__ import annotations

import numpy as np
import pytest

from worldloom.video import upscaled, write_video


def _frames(n: int = 6) -> list[np.ndarray]:
    out = []
    for i in range(n):
        f = np.full((16, 16, 3), (30, 40, 60), np.uint8)
        f[4:8, i:i + 4] = (250, 200, 20)  # a block moving one pixel a frame
        out.append(f)
    return out


def test_gif_holds_the_frames_upscaled_from_a_generator(tmp_path):
    import imageio.v3 as iio

    frames = _frames()
    path = write_video(tmp_path / "a" / "v.gif", (f for f in frames), fps=10, scale=2)
    back = iio.imread(path, extension=".gif", index=None)[..., :3]
    assert back.shape == (6, 32, 32, 3)
    assert np.array_equal(back, np.stack(list(upscaled(frames, 2))))  # two colours: the palette is exact


def test_mp4_has_every_frame(tmp_path):
    import imageio.v3 as iio

    path = write_video(tmp_path / "v.mp4", _frames(), fps=10)
    back = iio.imread(path, plugin="FFMPEG")
    assert back.shape[0] == 6 and back.shape[1:3] == (16, 16)


def test_bad_fps_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="fps must be > 0"):
        write_video(tmp_path / "v.gif", _frames(), fps=0)
    assert not (tmp_path / "v.gif").exists()


def _spy_popen(monkeypatch) -> list:
    """Record every process write_mp4 starts: (argv, Popen keyword arguments, the process)."""
    import subprocess

    started, real = [], subprocess.Popen

    def spy(cmd, **kw):
        p = real(cmd, **kw)
        started.append((cmd, kw, p))
        return p

    monkeypatch.setattr(subprocess, "Popen", spy)
    return started


def test_ffmpeg_starts_without_python_between_fork_and_exec(tmp_path, monkeypatch):
    # imageio's writer passes preexec_fn=os.setpgrp, which can deadlock the child in a threaded
    # process (play's server encodes beside its inference thread): no preexec_fn, a new session instead
    started = _spy_popen(monkeypatch)
    write_video(tmp_path / "v.mp4", _frames(), fps=10)
    ((cmd, kw, p),) = [s for s in started if "-i" in s[0]]
    assert kw.get("preexec_fn") is None and kw["start_new_session"] is True
    assert p.returncode == 0 and cmd[-1] == str(tmp_path / "v.mp4")


def test_mp4_errors_name_the_file_and_leave_no_ffmpeg(tmp_path, monkeypatch):
    from worldloom.video import write_mp4

    started = _spy_popen(monkeypatch)
    with pytest.raises(ValueError, match=r"v\.mp4: no frames"):
        write_mp4(tmp_path / "v.mp4", [], fps=10)
    frames = _frames(3) + [np.zeros((8, 8, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"v\.mp4: frame 3 is \(8, 8, 3\), the first was \(16, 16, 3\)"):
        write_mp4(tmp_path / "v.mp4", frames, fps=10)
    with pytest.raises(RuntimeError, match=r"ffmpeg could not write .*missing/v\.mp4 \(exit \d+\): .*No such file"):
        write_mp4(tmp_path / "missing" / "v.mp4", _frames(), fps=10)  # write_video makes the folder; ffmpeg does not
    assert len(started) >= 2 and all(p.poll() is not None for _, _, p in started)


def test_a_stuck_ffmpeg_is_killed_not_waited_on(tmp_path, monkeypatch):
    import subprocess

    import imageio_ffmpeg

    import worldloom.video as V

    stuck = tmp_path / "ffmpeg"
    stuck.write_text("#!/bin/sh\ncat > /dev/null\nexec sleep 60\n")  # reads every frame, then never exits
    stuck.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(stuck))
    monkeypatch.setattr(V, "MP4_TIMEOUT", 0.5)
    started = _spy_popen(monkeypatch)
    with pytest.raises(subprocess.TimeoutExpired):
        V.write_mp4(tmp_path / "v.mp4", _frames(), fps=10)
    assert started[0][2].poll() is not None  # killed and reaped
