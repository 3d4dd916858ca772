"""Recording downloads (``GET /record/<session>``): the zip, encoded one frame at a time, and the
limits on how many encodes run at once.

The zip holds ``video.<fmt>`` (model | truth side by side when truth was shown, 4x nearest) and
``actions.json``; its members are what the all-in-memory version made, byte for byte (checked
in ``tests/serve/test_record.py``: the GIF by Pillow's own steps, the MP4 by imageio's ffmpeg
command and settings).

Key choices (peak RSS growth of one encode, 64x64 model + truth panels (256x512 at 4x), in a fresh
process: VmHWM after ``clear_refs`` minus VmRSS before; random pixels unless said; the harness is
``tests/serve/test_record.py::MEASURE``):

- **Streamed, never stacked.** The old encode stacked every frame, repeated it 4x (600 frames:
  236 MB), let imageio turn that into 600 PIL images, wrote the video to a temp file, read it
  back and zipped it in memory: 600 frames +295 MB peak as MP4, +642 MB as GIF (+364 MB still held
  after it); 150 arena-like frames +156 MB as GIF. Now each 4x frame is made when its encoder asks
  for it; MP4 frames go down ffmpeg's pipe (:func:`worldloom.video.write_mp4`) into a temp file that is
  copied into the zip entry in chunks; the zip itself is an anonymous temp file
  (``tempfile.TemporaryFile``: no name to clean up, gone when closed) that the route streams back.
  600 frames: +1 MB peak as MP4, +6 MB as GIF (+5 MB in a thread, as the server runs it); at the
  1800-frame cap (arena-like frames) +0.6 / +2.6 MB. Same encode time (200-frame GIF: 7 s both).
- **GIF: Pillow's writer, one frame at a time** (:func:`worldloom.video.write_gif`): the same bytes as
  ``Image.save(save_all=True)``, holding two frames instead of all of them.
- **Limits** (:class:`EncodeSlots`): one download per session at a time (its encode and its send,
  so a session never holds more than one temp zip; a second request gets 429), and at most
  ``max_encodes`` encodes at once across sessions (default 2: two encodes already fill this
  project's 2-core reference machine; a third gets 503 with ``Retry-After``). The send holds no
  server-wide slot: a slow reader would otherwise lock everyone out.
- **Memory goes back after a session and an encode.** The +364 MB the old GIF path kept was glibc
  holding freed big buffers; with none allocated, one encode in a fresh process is back within +3 MB.
  Under load it was not: five sessions played to the cap and two concurrent encodes left +746 MB
  (the soak test). A session's frames now live in a memory-mapped ring (:class:`Recording`), the
  encode's copy is mapped too, and :func:`trim_heap` runs after each encode: +9.96 % at the soak's end.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..video import VIDEO_SCALE, upscaled, write_gif, write_mp4

MAX_ENCODES = 2  # encodes at once across sessions (see the module docstring)
RETRY_AFTER = 5  # s, in the 429/503 replies: a 600-frame arena recording encodes in ~5 s here (GIF)
CHUNK = 256 * 1024  # bytes per read when copying the MP4 into the zip and streaming the zip back
Entry = tuple[np.ndarray, np.ndarray | None, int, float | None]  # model frame, truth frame, action, PSNR


def _mapped(shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 array in its own anonymous memory map: untouched pages cost nothing, and every page goes
    back to the system when the array is freed (a malloc'd one of this size may stay in the heap)."""
    import mmap

    return np.frombuffer(mmap.mmap(-1, max(1, int(np.prod(shape)))), np.uint8)[: int(np.prod(shape))].reshape(shape)


class Recording:
    """A session's last ``cap`` frames, in preallocated ring buffers (model frames, truth frames when
    shown, actions, PSNR).

    Why not a deque of the frames the Simulator returns: each is a 12 KB view of its own torch tensor,
    allocated between the step's temporaries, so 1,800 kept frames held 113 MB of heap (63 KB a
    frame) that glibc never handed back after the session ended (the soak test: +746 MB over five
    sessions played to the cap). One (cap, H, W, 3) array per stream in its own memory map: its pages
    become resident as frames are written, and all go back to the system with it.
    """

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError(f"Recording: cap must be >= 1, got {cap}")
        self.cap, self.n, self.start, self.dropped = cap, 0, 0, 0  # start: ring index of the oldest frame
        self.frames: np.ndarray | None = None  # (cap, H, W, 3) uint8, allocated at the first frame
        self.truths: np.ndarray | None = None  # same, at the first truth frame
        self.has_truth = np.zeros(cap, bool)
        self.actions = np.zeros(cap, np.int64)
        self.psnr = np.full(cap, np.nan)

    def __len__(self) -> int:
        return self.n

    def clear(self) -> None:
        """Forget every frame (a reset); the buffers are kept for the next world of the same size."""
        self.n = self.start = self.dropped = 0

    def append(self, frame: np.ndarray, truth: np.ndarray | None, action: int, psnr: float | None) -> None:
        if self.frames is None or self.frames.shape[1:] != frame.shape:
            self.frames, self.truths, self.n, self.start = _mapped((self.cap, *frame.shape)), None, 0, 0
        if self.n < self.cap:
            i, self.n = (self.start + self.n) % self.cap, self.n + 1
        else:  # full: overwrite the oldest
            i, self.start, self.dropped = self.start, (self.start + 1) % self.cap, self.dropped + 1
        self.frames[i] = frame
        if truth is not None:
            if self.truths is None:
                self.truths = _mapped(self.frames.shape)
            self.truths[i] = truth
        self.has_truth[i], self.actions[i] = truth is not None, action
        self.psnr[i] = np.nan if psnr is None else psnr

    def entries(self) -> list[Entry]:
        """The frames oldest first, as copies (play goes on writing the ring while an encode reads them)."""
        if self.n == 0 or self.frames is None:
            return []
        idx = (self.start + np.arange(self.n)) % self.cap
        frames = np.take(self.frames, idx, axis=0, out=_mapped((self.n, *self.frames.shape[1:])))  # mapped too:
        truths = (np.take(self.truths, idx, axis=0, out=_mapped((self.n, *self.truths.shape[1:])))  # a malloc'd
                  if self.truths is not None else None)  # copy of this size stayed in the heap after the encode
        return [(frames[k], truths[k] if truths is not None and self.has_truth[j] else None, int(self.actions[j]),
                 None if np.isnan(self.psnr[j]) else float(self.psnr[j])) for k, j in enumerate(idx)]


def panels(entries: list[Entry]) -> tuple[bool, Iterator[np.ndarray]]:
    """(has_truth, the video's frames one at a time): model | truth (zeros where truth was off) when
    any frame has truth, else the model frame; each repeated ``VIDEO_SCALE``x in both axes."""
    has_truth = any(t is not None for _, t, _, _ in entries)

    def frames() -> Iterator[np.ndarray]:
        for f, t, _, _ in entries:
            yield np.concatenate([f, t if t is not None else np.zeros_like(f)], axis=1) if has_truth else f

    return has_truth, upscaled(frames(), VIDEO_SCALE)


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


def trim_heap() -> None:
    """Hand the heap's free pages back to the system after an encode (glibc's ``malloc_trim``; a no-op
    elsewhere): an encode's many frame-sized temporaries, freed in a thread's malloc arena, otherwise
    stay resident."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs a subprocess), or None elsewhere."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc
        return None


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
