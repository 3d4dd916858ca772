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
