"""Recording downloads (serve/record.py, ``GET /record``): the streamed zip holds what the old
all-in-memory one did (GIF byte for byte), one download per session (429), ``max_encodes`` at once
(503 + Retry-After), and the memory an encode takes (peak RSS in a fresh process)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from worldloom.serve import record as R
from worldloom.video import write_gif


def _get(url: str) -> tuple[int, Any, bytes]:
    """(status, headers (case-insensitive), body)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def _frame(i: int, shift: int = 0) -> np.ndarray:
    """A flat background with two moving blocks (like the arena: few colours, small changes)."""
    f = np.full((64, 64, 3), (30, 40, 60), np.uint8)
    x = (i * 2 + shift) % 56
    f[10:18, x:x + 8] = (250, 200, 20)
    f[40:46, 56 - x:62 - x] = (20, 220, 90)
    return f


def _old_video_zip(entries: list[R.Entry], meta: dict[str, Any], fmt: str, fps: float) -> bytes:
    """The all-in-memory ``video_zip`` this module replaced (serve/app.py before streaming)."""
    import tempfile

    import imageio.v3 as iio

    has_truth = any(t is not None for _, t, _, _ in entries)
    frames = [np.concatenate([f, t if t is not None else np.zeros_like(f)], axis=1) if has_truth else f
              for f, t, _, _ in entries]
    video = np.stack(frames).repeat(4, axis=1).repeat(4, axis=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"video.{fmt}"
        if fmt == "gif":
            iio.imwrite(path, video, extension=".gif", duration=1000.0 / fps, loop=0)
        else:
            iio.imwrite(path, video, plugin="FFMPEG", fps=fps, macro_block_size=1)
        data = path.read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"video.{fmt}", data)
        z.writestr("actions.json", json.dumps(R.actions_log(entries, meta, fps, has_truth), indent=1))
    return buf.getvalue()


def _gif(frames: list[np.ndarray], duration: float = 1000 / 30) -> bytes:
    buf = io.BytesIO()
    write_gif(buf, iter(frames), duration)
    return buf.getvalue()


def _pillow_gif(frames: list[np.ndarray], duration: float = 1000 / 30) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=duration, loop=0)


@pytest.mark.parametrize("kind", ["arena", "noise", "repeats", "one", "all_same", "two_same"])
def test_gif_is_byte_for_byte_pillows(kind):
    rng = np.random.default_rng(0)
    frames = {"arena": [_frame(i) for i in range(8)],  # few colours: unchanged pixels become transparent
              "noise": [rng.integers(0, 256, (32, 48, 3), np.uint8) for _ in range(4)],  # full palettes
              "repeats": [_frame(i // 3) for i in range(9)],  # runs of equal frames: merged durations
              "one": [_frame(0)],
              "all_same": [_frame(0)] * 4,  # one distinct frame: a still image lasting 4 frames
              "two_same": [_frame(0), _frame(0), _frame(1)]}[kind]
    assert _gif(frames) == _pillow_gif(frames)


def _entries(n: int, truth: str = "some") -> list[R.Entry]:
    out = []
    for i in range(n):
        t = _frame(i, 3) if truth == "all" or (truth == "some" and i % 3) else None
        out.append((_frame(i), t, i % 5, None if t is None else 20.0 + i / 7))
    return out


@pytest.mark.parametrize("fmt", ["gif", "mp4"])
@pytest.mark.parametrize("truth", ["some", "none"])
def test_zip_contents_unchanged(fmt, truth):
    entries = _entries(7, truth)
    meta = {"checkpoint": "tiny", "seed": 3, "context_source": "zeros", "context_actions": [0, 0, 0, 0],
            "actions": [{"id": i, "name": f"a{i}", "keys": []} for i in range(5)], "sim": {"steps": 2},
            "dropped_frames": 1}
    buf = io.BytesIO()
    R.video_zip(buf, entries, meta, fmt, 15.0)
    new = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    old = zipfile.ZipFile(io.BytesIO(_old_video_zip(entries, meta, fmt, 15.0)))
    assert new.namelist() == old.namelist() == [f"video.{fmt}", "actions.json"]
    assert new.read("actions.json") == old.read("actions.json")
    log = json.loads(new.read("actions.json"))
    assert log["frames"] == 7 and log["layout"] == ("model | truth" if truth == "some" else "model")
    assert log["action_names"] == [f"a{i}" for i in range(5)] and log["dropped_frames"] == 1
    assert [(i.compress_type, i.external_attr) for i in new.infolist()] == \
        [(i.compress_type, i.external_attr) for i in old.infolist()]
    # the same frames through the same writer and settings: the same bytes (x264 is deterministic)
    assert new.read(f"video.{fmt}") == old.read(f"video.{fmt}")
    import imageio.v3 as iio

    video = iio.imread(new.read(f"video.{fmt}"), extension=f".{fmt}", **({"plugin": "FFMPEG"} if fmt == "mp4" else {}))
    assert video.shape[:3] == (7, 256, 512 if truth == "some" else 256)  # model | truth, 4x nearest


def test_encode_slots():
    s = R.EncodeSlots(2)
    assert s.acquire("a") is None and s.acquire("a") == "session" and s.acquire("b") is None
    assert s.acquire("c") == "server"
    s.encoded()  # a's encode finished, its send goes on
    assert s.acquire("a") == "session" and s.acquire("c") is None
    s.sent("a"), s.sent("a")  # idempotent
    assert s.acquire("a") == "server" and s.sessions == {"b", "c"}
    with pytest.raises(ValueError):
        R.EncodeSlots(0)


# --- over HTTP: the limits -----------------------------------------------------------------------

@pytest.fixture
def gated(monkeypatch):
    """Make the server's encodes wait for ``gate`` (so requests overlap for sure); ``started``
    counts encodes that began."""
    import worldloom.serve.app as A

    gate, started, lock = threading.Event(), [], threading.Lock()
    real = A.video_zip

    def slow(*a: Any, **kw: Any) -> None:
        with lock:
            started.append(1)
        assert gate.wait(60)
        real(*a, **kw)

    monkeypatch.setattr(A, "video_zip", slow)
    yield gate, started
    gate.set()  # a failed test must not leave an encode waiting (the server's stop would wait for it)


def _recorded(client, srv, frames: int = 2) -> str:
    c = client(srv)
    sid = c.json("hello")["session"]
    c.json("ready")
    c.frame(where=lambda h: h["step"] >= frames)
    c.send({"type": "pause", "on": True})  # the recording is there; no more frames to read
    return sid


def _wait(cond: Any, timeout: float = 30.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_one_download_per_session(serve, client, gated):
    gate, started = gated
    srv = serve()
    sid = _recorded(client, srv)
    url = f"{srv.url}/record/{sid}?format=gif"
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_get, url)
        _wait(lambda: len(started) == 1)
        status, headers, body = _get(url)  # the same session while its encode runs
        assert status == 429 and "already" in json.loads(body)["error"] and headers["Retry-After"] == str(R.RETRY_AFTER)
        gate.set()
        status, headers, body = first.result(60)
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert int(headers["Content-Length"]) == len(body)
    assert sorted(zipfile.ZipFile(io.BytesIO(body)).namelist()) == ["actions.json", "video.gif"]
    slots = srv.app.state.record_slots
    _wait(lambda: not slots.sessions and slots.encoding == 0)
    assert _get(url)[0] == 200 and _get(f"{srv.url}/record/{sid}?format=mp4")[0] == 200  # back to back: fine


def test_encodes_capped_across_sessions(serve, client, gated):
    gate, started = gated
    srv = serve(max_encodes=2)
    sids = [_recorded(client, srv) for _ in range(3)]
    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(_get, f"{srv.url}/record/{sid}?format=gif") for sid in sids[:2]]
        _wait(lambda: len(started) == 2)
        status, headers, body = _get(f"{srv.url}/record/{sids[2]}?format=gif")
        assert status == 503 and headers["Retry-After"] == str(R.RETRY_AFTER)
        assert "encoding 2" in json.loads(body)["error"]
        gate.set()
        assert [f.result(60)[0] for f in running] == [200, 200]
    assert _get(f"{srv.url}/record/{sids[2]}?format=gif")[0] == 200  # slots freed
    assert srv.app.state.record_slots.encoding == 0


def test_failed_encode_frees_its_slots(serve, client, monkeypatch):
    import worldloom.serve.app as A

    def broken(*a: Any, **kw: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(A, "video_zip", broken)
    srv = serve(max_encodes=1)
    sid = _recorded(client, srv)
    for _ in range(2):  # neither the session nor the server slot leaks
        status, _, body = _get(f"{srv.url}/record/{sid}?format=gif")
        assert status == 500 and "RuntimeError" in json.loads(body)["error"]
    slots = srv.app.state.record_slots
    assert slots.encoding == 0 and not slots.sessions


# --- memory: peak RSS of one encode, in a fresh process -------------------------------------------

MEASURE = r"""
import gc, io, json, sys
import numpy as np
from worldloom.serve.record import video_zip
import imageio.v3, imageio_ffmpeg, PIL.Image, PIL.GifImagePlugin  # imports are not the encode's cost

def mb(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key)) / 1024

fmt, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
def frame(i):
    if kind == "noise":
        return rng.integers(0, 256, (64, 64, 3), np.uint8)
    f = np.full((64, 64, 3), 40, np.uint8); f[10:18, (2 * i) % 56:(2 * i) % 56 + 8] = 250
    return f
entries = [(frame(i), frame(i + 1), i % 5, 20.0) for i in range(n)]  # model | truth: 256x512 at 4x
meta = {"checkpoint": "t", "seed": 0, "actions": []}
with open(sys.argv[4], "w+b") as out:
    video_zip(out, entries[:2], meta, fmt, 30.0)  # warm up: first-use allocations are not the encode's
    out.seek(0); out.truncate()
    gc.collect()
    base = mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS (VmHWM) := RSS now
    video_zip(out, entries, meta, fmt, 30.0)
    peak = mb("VmHWM")
gc.collect()
print(json.dumps({"peak_mb": peak - base, "after_mb": mb("VmRSS") - base}))
"""


def _measure(tmp_path: Path, fmt: str, n: int, kind: str) -> dict[str, float]:
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    r = subprocess.run([sys.executable, "-c", MEASURE, fmt, str(n), kind, str(tmp_path / "r.zip")], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_encode_memory_does_not_grow_with_frames(tmp_path):
    # the old encode held ~4 copies of the 4x video: 150 frames of 256x512 -> > 150 MB
    m = _measure(tmp_path, "gif", 150, "arena")
    assert m["peak_mb"] < 40 and m["after_mb"] < 20, m


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["gif", "mp4"])
def test_600_frame_encode_memory(tmp_path, fmt):
    # random pixels: the largest palettes and files. Measured: gif +6 MB peak, mp4 +1 MB (was +642, +295)
    m = _measure(tmp_path, fmt, 600, "noise")
    assert m["peak_mb"] < 150 and m["after_mb"] < 30, m


# --- the session's recording: a ring of preallocated frames ------------------------------------------

def test_recording_keeps_the_last_cap_frames_in_order():
    rec = R.Recording(3)
    assert rec.entries() == [] and len(rec) == 0
    for i in range(5):
        truth = _frame(i, 1) if i % 2 else None
        rec.append(_frame(i), truth, i, None if truth is None else 20.0 + i)
    got = rec.entries()
    assert len(rec) == 3 and rec.dropped == 2 and [a for _, _, a, _ in got] == [2, 3, 4]
    assert all(np.array_equal(f, _frame(a)) for f, _, a, _ in got)
    assert [t is None for _, t, _, _ in got] == [True, False, True] and np.array_equal(got[1][1], _frame(3, 1))
    assert [p for _, _, _, p in got] == [None, 23.0, None]
    # the entries are copies: playing on does not change a recording being encoded
    rec.append(_frame(9), None, 9, None)
    assert np.array_equal(got[0][0], _frame(2))
    rec.clear()
    assert rec.entries() == [] and rec.dropped == 0
    rec.append(_frame(0)[:32], None, 1, None)  # a world of another size starts a new buffer
    assert rec.entries()[0][0].shape == (32, 64, 3)
