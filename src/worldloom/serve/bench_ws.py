"""``worldloom bench --mode ws``: play N frames through a real WebSocket and measure what a player gets.

:func:`ws_bench` starts the play server in-process (uvicorn in a thread on a free port, the same app
and worker as ``worldloom play``), connects with the ``websockets`` client from a separate process, plays a scripted action
sequence and shuts everything down. Nothing here prints.

Design choices:

- **Closed loop, one action outstanding.** The client sends action ``k`` (with ``seq`` k) and waits
  for the first frame whose header echoes ``seq >= k``; that wait is the action-to-frame latency
  (client send -> frame received and decoded). Then it sends the next action. With ``fps=None`` the
  server runs unpaced (one frame per action message), so the result is the highest rate the whole
  path sustains; with ``fps`` set, frames stream at that rate and the latency includes the wait
  for the next tick (what a player feels).
- **Scripted actions**: :func:`worldloom.runtime.bench.scripted_actions` (each action held 8
  frames, cycling), as in the rollout bench, so the two benches do the same work.
- **Stages** come from the frame headers: denoise, cache write and decode (the Simulator's
  timings), encode (frame -> bytes) and send (server ``send_bytes``); ``encode_send_ms`` is their sum.
- **The client is its own process** (default), as a browser is, so its Python never takes the
  server's GIL; ``client_process=False`` keeps it in a thread of the server's process (the first
  sessions' bench). On the 2-core box the two gave the same rates within the machine's noise
  (docs/BENCHMARKS.md).
- **Memory**: RSS of the server process (read by the client from /proc by pid) after the warmup
  and at the end, plus the peak of samples every 100 frames.
- The first ``warmup`` frames (default ``min(20, frames // 10)``) are played but not measured.
"""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any

import numpy as np

from ..hardware import setup_cpu
from . import protocol as P

RECV_TIMEOUT_S = 120.0


def _summary(x: list[float]) -> dict[str, float | None]:
    if not x:
        return {"mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(x, dtype=np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def _recv_json(ws: Any, want: str) -> dict[str, Any]:
    """Skip to the next JSON message of type ``want``; an ``error`` is raised as RuntimeError."""
    while True:
        m = ws.recv(timeout=RECV_TIMEOUT_S)
        if isinstance(m, bytes):
            continue
        d = json.loads(m)
        if d.get("type") == "error":
            raise RuntimeError(f"server error {d.get('code')}: {d.get('message')}")
        if d.get("type") == want:
            return d


def _client(url: str, frames: int, warmup: int, server_pid: int) -> dict[str, Any]:
    """The player: connect, play ``warmup + frames`` scripted actions closed-loop, return raw measurements.

    Runs in its own process by default (a browser is one), so its Python never competes with the
    server's for a GIL; it reads the server's RSS from /proc by pid.
    """
    from websockets.sync.client import connect

    from ..runtime.bench import rss_bytes, scripted_actions

    lat: list[float] = []
    server_lat: list[float] = []
    stages: dict[str, list[float]] = {}
    rss: list[int] = []
    nbytes = 0
    with connect(url, max_size=P.TRANSPORT_MAX_BYTES) as ws:
        _recv_json(ws, "hello")
        ready = _recv_json(ws, "ready")
        actions = scripted_actions(warmup + frames, len(ready["actions"]))
        got, seq, outstanding, t_send = 0, 0, 0, 0.0
        t_start = time.perf_counter()
        if warmup == 0:
            rss.append(rss_bytes(server_pid))
        while got < warmup + frames:
            if not outstanding:
                seq += 1
                outstanding = seq
                t_send = time.perf_counter()
                ws.send(json.dumps({"type": "action", "action": int(actions[min(seq - 1, len(actions) - 1)]), "seq": seq}))
            m = ws.recv(timeout=RECV_TIMEOUT_S)
            if isinstance(m, str):
                d = json.loads(m)
                if d.get("type") == "error":
                    raise RuntimeError(f"server error {d.get('code')}: {d.get('message')}")
                continue
            header, _ = P.decode_frame(m)
            t_recv = time.perf_counter()
            got += 1
            if got == warmup:
                t_start = t_recv
                rss.append(rss_bytes(server_pid))
            answered = header.get("seq") is not None and header["seq"] >= outstanding
            if answered:
                outstanding = 0
            if got <= warmup:
                continue
            nbytes = len(m)
            if answered:
                lat.append((t_recv - t_send) * 1e3)
            if got > warmup + 1:  # the first measured header reports a warmup frame's send
                server_lat.append(header["latency_ms"])
            for k, v in header["timings_ms"].items():
                stages.setdefault(k, []).append(v)
            if got % 100 == 0:
                rss.append(rss_bytes(server_pid))
        total = time.perf_counter() - t_start
        rss.append(rss_bytes(server_pid))
    return {"lat": lat, "server_lat": server_lat, "stages": stages, "rss": rss, "nbytes": nbytes, "total": total,
            "ready": ready}


def ws_bench(checkpoint: Any, frames: int = 3000, fps: float | None = None, host: str = "127.0.0.1",
             port: int = 0, sim_overrides: dict[str, Any] | None = None, warmup: int | None = None,
             seed: int = 0, speed: dict[str, Any] | None = None, threads: int = 1,
             client_process: bool = True) -> dict[str, Any]:
    """Play ``frames`` frames over a WebSocket; return FPS, latency percentiles, stages and memory.

    Args:
        checkpoint: bundled name or checkpoint dir (or a loaded ``WorldModel``, for tests).
        frames: measured frames (after ``warmup``).
        fps: server target rate; None = unpaced (as fast as the closed loop goes).
        host, port: where the in-process server binds (port 0 = a free port).
        sim_overrides: SimConfig fields (steps, window, sink, ...).
        speed: ``load()`` options (precision, compile) for a checkpoint given by name or path.
        threads: torch intra-op threads of the server's inference worker (``worldloom play --threads``).
        client_process: run the client in its own process (as a browser is); False = a thread of this one.
    """
    import multiprocessing as mp

    import torch

    from .app import create_app
    from .server import ServerThread

    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be > 0 or None (unpaced), got {fps}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    warmup = min(20, frames // 10) if warmup is None else warmup
    setup_cpu()
    cks = {"bench": checkpoint} if not isinstance(checkpoint, (str, os.PathLike)) else [str(checkpoint)]
    app = create_app(cks, max_sessions=1, idle_timeout=3600.0, fps=fps or 0.0, sim_overrides=sim_overrides, seed=seed,
                     record_frames=1, speed=speed, threads=threads, host=host)
    server = ServerThread(app, host, port).start()
    args = (f"ws://{host}:{server.port}/ws", frames, warmup, os.getpid())
    try:
        if client_process:  # spawn: a clean interpreter, no fork of a process holding torch threads
            with mp.get_context("spawn").Pool(1) as pool:
                c = pool.apply(_client, args)
        else:
            c = _client(*args)
    finally:
        server.stop()

    ready, total = c["ready"], c["total"]
    mean = {k.removesuffix("_ms"): float(np.mean(v)) for k, v in c["stages"].items()}
    mean["encode_send"] = mean.get("encode", 0.0) + mean.get("send", 0.0)
    mb = [r / 2**20 for r in c["rss"]]
    return {
        "mode": "ws",
        "checkpoint": ready["checkpoint"] if isinstance(checkpoint, (str, os.PathLike)) else "<in-memory model>",
        "frames": frames, "warmup": warmup, "target_fps": fps, "fps": frames / total if total > 0 else None,
        "latency_ms": _summary(c["lat"]), "server_latency_ms": _summary(c["server_lat"]),
        "actions_answered": len(c["lat"]),
        "stages_ms": {k: round(v, 4) for k, v in mean.items()},
        "frame_bytes": c["nbytes"],
        "rss_mb": {"start": mb[0], "end": mb[-1], "max": max(mb)},
        "rss_growth_pct": (mb[-1] - mb[0]) / mb[0] * 100.0 if mb[0] else None,
        "sim": ready["sim"], "context_source": ready["context_source"],
        "client": "process" if client_process else "thread",
        "system": {"python": platform.python_version(), "torch": torch.__version__, "threads": threads,
                   "cpu_count": os.cpu_count(), "machine": platform.machine()},
    }


def format_table(r: dict[str, Any]) -> str:
    """A human table of :func:`ws_bench`'s result (``--json`` prints the dict instead)."""
    lat, srv, st, mem = r["latency_ms"], r["server_latency_ms"], r["stages_ms"], r["rss_mb"]

    def f(x: float | None, nd: int = 1) -> str:
        return "-" if x is None else f"{x:.{nd}f}"

    target = "unpaced" if r["target_fps"] is None else f"target {r['target_fps']:g}"
    rows = [
        ("checkpoint", f"{r['checkpoint']} ({r['sim']['policy']}, {r['sim']['steps']} sampler steps)"),
        ("frames", f"{r['frames']} (+{r['warmup']} warmup), {r['frame_bytes']} B each"),
        ("FPS", f"{f(r['fps'])} ({target})"),
        ("action -> frame ms", f"p50 {f(lat['p50'])}  p95 {f(lat['p95'])}  p99 {f(lat['p99'])}  max {f(lat['max'])}"),
        ("server latency ms", f"p50 {f(srv['p50'])}  p95 {f(srv['p95'])}  p99 {f(srv['p99'])}"),
        ("stages ms (mean)", f"denoise {f(st.get('denoise'), 2)}  cache write {f(st.get('cache_write'), 2)}  "
                             f"decode {f(st.get('decode'), 2)}  encode+send {f(st.get('encode_send'), 2)}"),
        ("server RSS MB", f"start {f(mem['start'])}  end {f(mem['end'])}  max {f(mem['max'])}  "
                          f"growth {f(r['rss_growth_pct'], 2)} %"),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)
