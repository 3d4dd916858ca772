"""Recording downloads (``GET /record/<session>``): the zip, encoded one frame at a time, and the
limits on how many encodes run at once.

The zip holds ``video.<fmt>`` (model | truth side by side when truth was shown, 4x nearest) and
``actions.json``; its members are what the all-in-memory version made, byte for byte (checked
in ``tests/serve/test_record.py``: the GIF by Pillow's own steps, the MP4 by the same
imageio/ffmpeg writer and settings).

Key choices (peak RSS growth of one encode, 64x64 model + truth panels (256x512 at 4x), in a fresh
process: VmHWM after ``clear_refs`` minus VmRSS before; random pixels unless said; the harness is
``tests/serve/test_record.py::MEASURE``):

- **Streamed, never stacked.** The old encode stacked every frame, repeated it 4x (600 frames:
  236 MB), let imageio turn that into 600 PIL images, wrote the video to a temp file, read it
  back and zipped it in memory: 600 frames +295 MB peak as MP4, +642 MB as GIF (+364 MB still held
  after it); 150 arena-like frames +156 MB as GIF. Now each 4x frame is made when its encoder asks
  for it; MP4 frames go down ffmpeg's pipe (imageio's writer, as before) into a temp file that is
  copied into the zip entry in chunks; the zip itself is an anonymous temp file
  (``tempfile.TemporaryFile``: no name to clean up, gone when closed) that the route streams back.
  600 frames: +1 MB peak as MP4, +6 MB as GIF (+5 MB in a thread, as the server runs it); at the
  1800-frame cap (arena-like frames) +0.6 / +2.6 MB. Same encode time (200-frame GIF: 7 s both).
- **GIF: Pillow's writer, one frame at a time.** ``Image.save(save_all=True)`` keeps every frame
  (quantized, 1 byte/pixel: 79 MB for 600 frames, 236 MB at the cap) until it has seen the last,
  only to add an unchanged frame's time to the one before it. :func:`write_gif` runs the same
  steps with Pillow's own helpers (quantize, palette, delta box, transparency of unchanged pixels,
  frame header) but holds only the previous frame, and writes each frame once the next one
  differs. The tests check its bytes equal ``Image.save``'s (and the whole zip's members equal the
  old ones, MP4 included); a Pillow without those helpers gets ``Image.save`` fed by a generator
  (no 4x RGB stack, but the quantized frames kept).
- **Limits** (:class:`EncodeSlots`): one download per session at a time (its encode and its send,
  so a session never holds more than one temp zip; a second request gets 429), and at most
  ``max_encodes`` encodes at once across sessions (default 2: two encodes already fill this
  project's 2-core reference machine; a third gets 503 with ``Retry-After``). The send holds no
  server-wide slot: a slow reader would otherwise lock everyone out.
- **No gc / malloc_trim.** The +364 MB the old GIF path kept was glibc holding the freed big
  buffers; with none allocated, RSS is back within +3 MB after an encode (+1 MB at the cap), so
  there is nothing to hand back.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

VIDEO_SCALE = 4  # nearest-neighbour upscale of the downloaded video
MAX_ENCODES = 2  # encodes at once across sessions (see the module docstring)
RETRY_AFTER = 5  # s, in the 429/503 replies: a 600-frame arena recording encodes in ~5 s here (GIF)
CHUNK = 256 * 1024  # bytes per read when copying the MP4 into the zip and streaming the zip back
Entry = tuple[np.ndarray, np.ndarray | None, int, float | None]  # model frame, truth frame, action, PSNR


def panels(entries: list[Entry]) -> tuple[bool, Iterator[np.ndarray]]:
    """(has_truth, the video's frames one at a time): model | truth (zeros where truth was off) when
    any frame has truth, else the model frame; each repeated ``VIDEO_SCALE``x in both axes."""
    has_truth = any(t is not None for _, t, _, _ in entries)

    def frames() -> Iterator[np.ndarray]:
        for f, t, _, _ in entries:
            frame = np.concatenate([f, t if t is not None else np.zeros_like(f)], axis=1) if has_truth else f
            yield frame.repeat(VIDEO_SCALE, axis=0).repeat(VIDEO_SCALE, axis=1)

    return has_truth, frames()


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
    """H.264 through imageio's ffmpeg writer, frames piped one at a time (what ``imwrite(path,
    stacked, plugin="FFMPEG", fps=fps, macro_block_size=1)`` did, without the stack)."""
    import imageio.v3 as iio

    with iio.imopen(path, "w", plugin="FFMPEG") as f:
        f.write(frames, is_batch=True, fps=fps, macro_block_size=1)


def actions_log(entries: list[Entry], meta: dict[str, Any], fps: float, has_truth: bool) -> dict[str, Any]:
    """``actions.json``: the action id and PSNR per frame, seed, checkpoint, context, sim settings."""
    return {"checkpoint": meta.get("checkpoint"), "seed": meta.get("seed"), "fps": fps,
            "context_source": meta.get("context_source"), "context_actions": meta.get("context_actions"),
            "action_names": [a["name"] for a in meta.get("actions", [])], "sim": meta.get("sim"),
            "frames": len(entries), "dropped_frames": meta.get("dropped_frames", 0),
            "layout": "model | truth" if has_truth else "model", "actions": [a for _, _, a, _ in entries],
            "psnr": [None if p is None else round(p, 3) for _, _, _, p in entries]}


def _member(z: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    """A zip entry as ``ZipFile.writestr(name, ...)`` makes it (date, mode, compression)."""
    zi = zipfile.ZipInfo(name, date_time=time.localtime(time.time())[:6])
    zi.compress_type, zi.external_attr = z.compression, 0o600 << 16
    zi._compresslevel = z.compresslevel  # type: ignore[attr-defined]  # what writestr sets
    return zi


def video_zip(out: IO[bytes], entries: list[Entry], meta: dict[str, Any], fmt: str, fps: float) -> None:
    """Write the recording's zip into ``out`` (a seekable binary file): ``video.<fmt>`` then
    ``actions.json``, streamed (see the module docstring)."""
    if fmt not in ("mp4", "gif"):
        raise ValueError(f"video_zip: format must be mp4 or gif, got {fmt!r}")
    has_truth, frames = panels(entries)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(_member(z, f"video.{fmt}"), "w") as member:
            if fmt == "gif":
                write_gif(member, frames, 1000.0 / fps)
            else:  # ffmpeg needs a seekable file of its own (the index goes at the end)
                with tempfile.TemporaryDirectory(prefix="worldloom-record-") as tmp:
                    path = Path(tmp) / "video.mp4"
                    write_mp4(path, frames, fps)
                    with path.open("rb") as f:
                        shutil.copyfileobj(f, member, CHUNK)
        z.writestr("actions.json", json.dumps(actions_log(entries, meta, fps, has_truth), indent=1))


class EncodeSlots:
    """Who may start a recording download: one per session at a time, ``max_encodes`` encodes at
    once in all. Thread-safe; the route takes a slot, frees the encode part when the zip is built
    and the session part when the zip has been sent (or the request failed)."""

    def __init__(self, max_encodes: int = MAX_ENCODES) -> None:
        if max_encodes < 1:
            raise ValueError(f"max_encodes must be >= 1, got {max_encodes}")
        self.max_encodes = max_encodes
        self.lock = threading.Lock()
        self.sessions: set[str] = set()  # downloads in progress (encoding or sending)
        self.encoding = 0

    def acquire(self, sid: str) -> str | None:
        """Take a slot for session ``sid``: None when granted, else why not: ``"session"`` (this
        session has a download in progress: 429) or ``"server"`` (``max_encodes`` running: 503)."""
        with self.lock:
            if sid in self.sessions:
                return "session"
            if self.encoding >= self.max_encodes:
                return "server"
            self.sessions.add(sid)
            self.encoding += 1
            return None

    def encoded(self) -> None:
        """The encode is done (or failed): its server-wide slot is free."""
        with self.lock:
            self.encoding -= 1

    def sent(self, sid: str) -> None:
        """The download is over: the session may start another. Idempotent."""
        with self.lock:
            self.sessions.discard(sid)
