"""Video files from uint8 frames: GIF and MP4 written one frame at a time, for every writer in the
project (``worldloom generate``, the eval report's clips, play's ``/record`` downloads, tools).

Key choices:

- **Streamed, never stacked.** Frames may be any iterable; each is upscaled (nearest, ``scale``x)
  only when its encoder asks for it, so a long clip costs two frames of memory, not the whole
  upscaled stack (a 600-frame 4x recording stacked was 236 MB; serve/record.py has the numbers).
- **MP4: the ffmpeg binary imageio-ffmpeg ships, started here** with the command imageio's writer
  runs (raw RGB on stdin, H.264, yuv420p, no padding to 16 px), fed frame by frame: the same bytes.
  Not through imageio's writer, which starts ffmpeg with a Python ``preexec_fn`` (``os.setpgrp``):
  Python code between fork and exec can deadlock the child in a threaded process (imageio-ffmpeg
  issue #58), and play's server encodes in a thread beside the inference thread; CI hung that way
  (a /record MP4 download never answered, and the process never exited). ``start_new_session``
  does the same job in C. ffmpeg's stderr is kept for the error message; a stuck ffmpeg is killed
  after ``MP4_TIMEOUT`` s instead of being waited on forever.
- **GIF: Pillow's writer, one frame at a time.** ``Image.save(save_all=True)`` keeps every frame
  (quantized, 1 byte/pixel: 79 MB for 600 frames, 236 MB at the cap) until it has seen the last,
  only to add an unchanged frame's time to the one before it. :func:`write_gif` runs the same
  steps with Pillow's own helpers (quantize, palette, delta box, transparency of unchanged pixels,
  frame header) but holds only the previous frame, and writes each frame once the next one
  differs. The tests check its bytes equal ``Image.save``'s (and the whole zip's members equal the
  old ones, MP4 included); a Pillow without those helpers gets ``Image.save`` fed by a generator
  (no 4x RGB stack, but the quantized frames kept).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

MP4_TIMEOUT = 120.0  # s ffmpeg may take to finish after its last frame before it is killed
VIDEO_SCALE = 4  # nearest-neighbour upscale of written videos and downloads: 64 px frames shown at 256 px


def upscaled(frames: Iterable[np.ndarray], scale: int) -> Iterator[np.ndarray]:
    """Each uint8 frame (H, W, 3) repeated ``scale``x along both axes (nearest), one at a time."""
    for f in frames:
        f = np.asarray(f, dtype=np.uint8)
        yield f.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else f


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, scale: int = 1) -> Path:
    """Write uint8 frames (H, W, 3) as ``path`` (.gif, else MP4 via ffmpeg), upscaled ``scale``x; returns the path."""
    if fps <= 0:
        raise ValueError(f"write_video {path}: fps must be > 0, got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        with open(path, "wb") as fp:
            write_gif(fp, upscaled(frames, scale), 1000.0 / fps)
    else:
        write_mp4(path, upscaled(frames, scale), fps)
    return path


def write_gif(fp: IO[bytes], frames: Iterable[np.ndarray], duration: float) -> None:
    """What ``Image.save(fp, "GIF", save_all=True, append_images=..., duration=duration, loop=0)``
    writes for these RGB frames, holding two frames instead of all of them (mirrors Pillow's
    ``GifImagePlugin._write_multiple_frames``; the bytes are checked equal in the tests)."""
    from PIL import GifImagePlugin as G
    from PIL import Image, ImageChops

    if not all(hasattr(G, n) for n in ("_normalize_mode", "_normalize_palette", "_getbbox", "_get_global_header",
                                       "_write_frame_data")):  # another Pillow: its own writer (keeps P frames)
        it = iter(frames)
        Image.fromarray(next(it)).save(fp, format="GIF", save_all=True, append_images=(Image.fromarray(a) for a in it),
                                       duration=duration, loop=0)
        return
    info: dict[str, Any] = {"duration": duration, "loop": 0, "optimize": True}  # Image.save + GifImagePlugin._save
    first: np.ndarray | None = None  # kept until a second distinct frame shows the file is an animation
    pending: tuple[Any, Any, dict[str, Any]] | None = None  # (frame, delta box, encoderinfo), not yet written
    previous: Any = None
    written = 0

    def flush(frame: Any, bbox: Any, ei: dict[str, Any]) -> None:
        if not bbox:
            for s in G._get_global_header(frame, ei):
                fp.write(s)
            offset = (0, 0)
        else:
            ei["include_color_table"] = True  # no global palette given
            if bbox != (0, 0, *frame.size):
                frame = frame.crop(bbox)
            offset = bbox[:2]
        G._write_frame_data(fp, frame, offset, ei)

    for a in frames:
        im = G._normalize_mode(Image.fromarray(a))
        if first is None:
            first = a
            for k, v in im.info.items():
                if k != "transparency" and isinstance(k, str):
                    info.setdefault(k, v)
        ei = info.copy()
        if "transparency" in im.info:
            ei.setdefault("transparency", im.info["transparency"])
        im = G._normalize_palette(im, None, ei)
        diff = None
        if pending is not None and previous is not None:
            delta, bbox = G._getbbox(previous, im)
            if not bbox:  # identical to the previous frame: it just lasts longer
                if ei.get("duration"):
                    pending[2]["duration"] = pending[2].get("duration", 0) + ei["duration"]
                continue
            if ei.get("optimize") and im.mode != "1":  # unchanged pixels -> a free palette index, if any
                if "transparency" not in ei:
                    with contextlib.suppress(ValueError):
                        ei["transparency"] = im.palette._new_color_index(im)
                if "transparency" in ei:
                    if delta.mode == "RGBA":
                        r, g, b, al = delta.split()
                        delta = ImageChops.lighter(ImageChops.lighter(r, g), ImageChops.lighter(b, al))
                    unchanged = delta.point([255, *(0,) * 255], "1")
                    diff = im.copy()
                    diff.paste(ei["transparency"], mask=unchanged)
        else:
            bbox = None
        previous = im
        if pending is not None:
            flush(*pending)
            written += 1
        pending = (diff or im, bbox, ei)
    if first is None:
        raise ValueError("write_gif: no frames")
    if written == 0:  # one distinct frame: Pillow writes a still image lasting the summed time
        Image.fromarray(first).save(fp, format="GIF", save_all=True, append_images=[],
                                    duration=pending[2].get("duration", duration), loop=0)
        return
    flush(*pending)
    fp.write(b";")


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float) -> None:
    """H.264 of uint8 frames (H, W, 3), piped to ffmpeg one at a time (see the module docstring)."""
    import subprocess
    import tempfile
    from fractions import Fraction

    import imageio_ffmpeg

    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError(f"write_mp4 {path}: no frames")
    h, w = np.asarray(first).shape[:2]
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{w}x{h}",
           "-pix_fmt", "rgb24", "-r", str(Fraction(fps).limit_denominator()), "-i", "-", "-an",
           "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-v", "warning", str(path)]
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            for i, f in enumerate(itertools.chain([first], it)):
                f = np.ascontiguousarray(f, dtype=np.uint8)
                if f.shape != (h, w, 3):
                    raise ValueError(f"write_mp4 {path}: frame {i} is {f.shape}, the first was {(h, w, 3)}")
                try:
                    p.stdin.write(memoryview(f).cast("B"))  # type: ignore[union-attr]
                except BrokenPipeError:  # ffmpeg quit: its message says why
                    break
            with contextlib.suppress(BrokenPipeError):
                p.stdin.close()  # type: ignore[union-attr]
            code = p.wait(MP4_TIMEOUT)
        except BaseException:  # a bad frame, a stuck ffmpeg (TimeoutExpired), an interrupt: no ffmpeg left behind
            p.kill()
            p.wait()
            raise
        if code != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(f"ffmpeg could not write {path} (exit {code}): {tail or 'no message'}")
