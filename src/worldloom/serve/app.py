"""The play server: a FastAPI app with one WebSocket per player and one static page.

``worldloom play --checkpoint arena`` -> :func:`play_main` -> :func:`run`. Routes:

- ``GET /`` the page (``static/index.html`` + ``static/app.js``; no build step).
- ``GET /api/info`` checkpoints, fps, limits, sessions in use.
- ``WS /ws`` a play session (protocol: ``docs/PROTOCOL.md``, :mod:`.protocol`).
- ``GET /record/<session id>?format=mp4|gif`` a zip of the session's video + ``actions.json``.

Key choices:

- All torch work happens in the single :class:`~.session.Worker` thread; the event loop only
  parses messages into slots and sends what the worker produced (see :mod:`.session`).
- Each session has one sender task, so sends on a socket never interleave; the receive loop
  answers every bad message with an ``error`` and keeps going.
- Safety: binds 127.0.0.1 unless told otherwise; a client can only name checkpoints from the
  configured list (by name, never a path); the only files served are the two fixed static files;
  a recording is reachable only through its session's unguessable id, while the session lives.
- Extra players beyond ``max_sessions`` get a ``busy`` error and close code 1013; sessions
  without input for ``idle_timeout`` s get an ``idle`` error and close code 4000.
"""

import argparse
import asyncio
import contextlib
import io
import json
import logging
import socket
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import protocol as P
from .session import Session, Worker

log = logging.getLogger("worldloom.serve")
VIDEO_SCALE = 4
MAX_PENDING = 256  # unsent JSON replies per session before its receive loop waits


def _names(checkpoints: dict[str, Any] | list[str]) -> dict[str, Any]:
    """Configured checkpoints as name -> source; a list entry is named by its last path part."""
    if isinstance(checkpoints, dict):
        return dict(checkpoints)
    out: dict[str, Any] = {}
    for c in checkpoints:
        name, k = Path(str(c)).name or str(c), 2
        base = name
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out[name] = c
    return out


def _static(name: str) -> str:
    return resources.files("worldloom.serve").joinpath("static", name).read_text(encoding="utf-8")


def video_zip(entries: list[tuple[np.ndarray, np.ndarray | None, int, float | None]], meta: dict[str, Any],
              fmt: str, fps: float) -> bytes:
    """A zip with ``video.<fmt>`` (model | truth side by side when truth was shown, 4x nearest)
    and ``actions.json`` (the action id per frame, PSNR per frame, seed, checkpoint, context)."""
    import imageio.v3 as iio

    has_truth = any(t is not None for _, t, _, _ in entries)
    frames = []
    for f, t, _, _ in entries:
        frames.append(np.concatenate([f, t if t is not None else np.zeros_like(f)], axis=1) if has_truth else f)
    video = np.stack(frames).repeat(VIDEO_SCALE, axis=1).repeat(VIDEO_SCALE, axis=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"video.{fmt}"
        if fmt == "gif":
            iio.imwrite(path, video, extension=".gif", duration=1000.0 / fps, loop=0)
        else:
            iio.imwrite(path, video, plugin="FFMPEG", fps=fps, macro_block_size=1)
        data = path.read_bytes()
    names = [a["name"] for a in meta.get("actions", [])]
    log_ = {"checkpoint": meta.get("checkpoint"), "seed": meta.get("seed"), "fps": fps,
            "context_source": meta.get("context_source"), "context_actions": meta.get("context_actions"),
            "action_names": names, "sim": meta.get("sim"), "frames": len(entries),
            "dropped_frames": meta.get("dropped_frames", 0), "layout": "model | truth" if has_truth else "model",
            "actions": [a for _, _, a, _ in entries],
            "psnr": [None if p is None else round(p, 3) for _, _, _, p in entries]}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"video.{fmt}", data)
        z.writestr("actions.json", json.dumps(log_, indent=1))
    return buf.getvalue()


def create_app(checkpoints: dict[str, Any] | list[str], default: str | None = None, max_sessions: int = 4,
               idle_timeout: float = 60.0, fps: float = 30.0, sim_overrides: dict[str, Any] | None = None,
               record_frames: int = 1800, seed: int = 0, speed: dict[str, Any] | None = None, threads: int = 1) -> Any:
    """The ASGI app. ``checkpoints``: names/paths, or name -> path or loaded ``WorldModel``
    (tests pass models). ``fps`` 0 = unpaced: one frame per action message (for benches).
    ``speed``: ``load()`` options (precision, compile) for checkpoints given by name or path."""
    # Imported here so that ``add_play_arguments`` stays light; this module has no
    # ``from __future__ import annotations``, so FastAPI sees these classes in the signatures below.
    from fastapi import FastAPI, Request, WebSocket
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    sources = _names(checkpoints)
    if not sources:
        raise ValueError("create_app: no checkpoints configured")
    default = default if default is not None else next(iter(sources))
    if default not in sources:
        raise ValueError(f"default checkpoint {default!r} is not among the configured {sorted(sources)}")
    if max_sessions < 1 or idle_timeout <= 0 or fps < 0 or record_frames < 1:
        raise ValueError("max_sessions >= 1, idle_timeout > 0, fps >= 0 and record_frames >= 1 are required")
    worker = Worker(sources, fps=fps, sim_overrides=sim_overrides, speed=speed, threads=threads)
    names = set(sources)

    async def reaper() -> None:
        while True:
            await asyncio.sleep(min(1.0, idle_timeout / 4))
            now = time.monotonic()
            for s in list(worker.sessions.values()):
                if now - s.last_input > idle_timeout:
                    worker.remove(s)
                    s.close_code = 4000
                    s.send_json(P.error("idle", f"no input for {idle_timeout:g} s; session freed (reload to play again)"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        worker.start(preload=[default])
        await asyncio.to_thread(worker.preloaded.wait)
        if worker.preload_error is not None:
            worker.stop()
            raise RuntimeError(f"cannot load checkpoint {default!r}: {worker.preload_error}")
        task = asyncio.create_task(reaper())
        try:
            yield
        finally:
            task.cancel()
            for s in list(worker.sessions.values()):
                worker.remove(s)
                s.close_code = 1001
                s.send_json(P.error("shutting_down", "the server is stopping"))
            await asyncio.to_thread(worker.stop)

    app = FastAPI(title="worldloom play", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.worker = worker

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/app.js")
    async def app_js() -> Response:
        return Response(_static("app.js"), media_type="text/javascript")

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return {"version": P.VERSION, "checkpoints": sorted(names), "default": default, "fps": fps,
                "max_sessions": max_sessions, "sessions": len(worker.sessions), "idle_timeout": idle_timeout}

    @app.get("/record/{sid}")
    async def record(sid: str, request: Request) -> Response:
        fmt = request.query_params.get("format", "mp4")
        if fmt not in ("mp4", "gif"):
            return JSONResponse({"error": f"format must be mp4 or gif, got {fmt[:20]!r}"}, status_code=400)
        s = worker.sessions.get(sid)
        if s is None:
            return JSONResponse({"error": "no such live session"}, status_code=404)
        entries, meta = s.recording()
        if not entries:
            return JSONResponse({"error": "nothing recorded yet"}, status_code=409)
        data = await asyncio.to_thread(video_zip, entries, meta, fmt, fps if fps > 0 else 15.0)
        fname = f"worldloom-{meta.get('checkpoint')}-seed{meta.get('seed')}.zip"
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{fname}"'})

    async def sender(ws: WebSocket, s: Session) -> None:
        try:
            while True:
                await s.wake.wait()
                s.wake.clear()
                while s.outbox:
                    await ws.send_text(s.outbox.popleft())
                if s.frame is not None:
                    (data, t_ref), s.frame = s.frame, None
                    t = time.perf_counter()
                    await ws.send_bytes(data)
                    worker.sent(s, t_ref, t)
                if s.close_code is not None:
                    await ws.close(s.close_code)
                    return
        except Exception:  # the connection is gone; the receive loop ends the session
            worker.remove(s)

    @app.websocket("/ws")
    async def play(ws: WebSocket) -> None:
        await ws.accept()
        if len(worker.sessions) >= max_sessions:
            await ws.send_text(P.error("busy", f"the server is full ({max_sessions} players); try again later"))
            await ws.close(1013)
            return
        s = Session(asyncio.get_running_loop(), default, seed, record_frames)
        worker.add(s)  # no await between the cap check and here: the check is atomic
        s.send_json(P.dumps("hello", version=P.VERSION, session=s.id, checkpoints=sorted(names), checkpoint=default,
                            fps=fps, idle_timeout=idle_timeout, max_message_bytes=P.MAX_MESSAGE_BYTES))
        task = asyncio.create_task(sender(ws, s))
        try:
            while not s.closed:
                while len(s.outbox) > MAX_PENDING and not s.closed:  # a client that floods but never reads
                    await asyncio.sleep(0.01)  # is not read until its replies drain: memory stays bounded
                m = await ws.receive()
                if m["type"] == "websocket.disconnect":
                    break
                data = m.get("text") if m.get("text") is not None else m.get("bytes")
                try:
                    msg = P.parse_message(data, s.spec, names)
                except P.ProtocolError as e:
                    s.send_json(P.error(e.code, e.message, e.ref))
                    continue
                if isinstance(msg, P.Ping):
                    s.send_json(P.dumps("pong", t=msg.t, sessions=len(worker.sessions)))
                else:
                    worker.apply(s, msg)
        except Exception:  # disconnects surface as exceptions too
            pass
        finally:
            worker.remove(s)
            if s.close_code is None:
                task.cancel()
            else:  # let the sender deliver the closing error
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 2.0)

    return app


class ServerThread:
    """uvicorn serving ``app`` in a background thread on ``host:port`` (0 = a free port)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.app, self.host, self.port = app, host, self.sock.getsockname()[1]
        cfg = uvicorn.Config(app, log_level="warning", ws_max_size=P.TRANSPORT_MAX_BYTES, lifespan="on")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="worldloom-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 120.0) -> "ServerThread":
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > timeout:
                raise RuntimeError("the play server did not start (see the log above)")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()


def run(checkpoint: str | list[str] = "arena", host: str = "127.0.0.1", port: int = 8000, fps: float = 30.0,
        max_sessions: int = 4, idle_timeout: float = 60.0, sim_overrides: dict[str, Any] | None = None,
        open_browser: bool = False, speed: dict[str, Any] | None = None, threads: int = 1) -> None:
    """Serve until interrupted (``worldloom play``); the first checkpoint is the default."""
    import torch
    import uvicorn

    torch.set_flush_denormal(True)
    torch.set_num_threads(1)  # this thread serves the event loop; the worker sets its own
    cks = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
    app = create_app(cks, max_sessions=max_sessions, idle_timeout=idle_timeout, fps=fps, sim_overrides=sim_overrides,
                     speed=speed, threads=threads)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"worldloom play: WARNING serving on {host}: anyone who can reach it can play", file=sys.stderr)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    print(f"worldloom play: {url}  (checkpoints {cks}, {fps:g} fps, {max_sessions} players max)", flush=True)
    if open_browser:  # best effort: a headless machine has no browser, and that is fine
        import threading
        import webbrowser

        threading.Timer(1.5, lambda: webbrowser.open(url)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", ws_max_size=P.TRANSPORT_MAX_BYTES)


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """--precision / --compile: inference speed-ups (worldloom.runtime.speed); default: the checkpoint's."""
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default=None,
                        help="weights/activations: fp32, bf16, or int8 linear layers (default: the checkpoint's "
                             "'speed' setting, else fp32)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the transformer blocks and the decoder (default: the checkpoint's)")


def speed_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``load()`` speed options given on the command line (absent = the checkpoint's default)."""
    return {k: getattr(args, k) for k in ("precision", "compile") if getattr(args, k, None) is not None}


def add_play_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``worldloom play`` (see ``worldloom.cli.run``)."""
    parser.add_argument("--checkpoint", action="append", default=None,
                        help="bundled name or checkpoint dir; repeat to offer several (first = default; default: arena)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--fps", type=float, default=30.0, help="target frames/s per player (0 = one frame per action)")
    parser.add_argument("--max-sessions", type=int, default=4, help="players at once; more get 'busy' (default 4)")
    parser.add_argument("--idle-timeout", type=float, default=60.0, help="free a session after this many s without input")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps per frame (default: the checkpoint's)")
    parser.add_argument("--window", type=int, default=None, help="rolling context window (default: the checkpoint's)")
    parser.add_argument("--sink", type=int, default=None, help="attention-sink frames (default: the checkpoint's)")
    add_speed_arguments(parser)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads of the inference worker (default 1; see docs/BENCHMARKS.md)")
    parser.add_argument("--open", action=argparse.BooleanOptionalAction, default=True,
                        help="open the page in the default browser, if there is one (default: yes)")


def play_main(args: argparse.Namespace) -> int:
    """Check what a user can get wrong, then serve. Returns an exit code (2 = usage error)."""
    from ..checkpoint import CheckpointError, resolve

    cks = args.checkpoint or ["arena"]
    problems = []
    for c in cks:
        try:
            resolve(c)
        except CheckpointError as e:
            problems.append(str(e))
    if not 0 <= args.port <= 65535:
        problems.append(f"--port must be in 0..65535, got {args.port}")
    if args.fps < 0 or args.max_sessions < 1 or args.idle_timeout <= 0:
        problems.append("--fps must be >= 0, --max-sessions >= 1 and --idle-timeout > 0")
    if args.threads < 1:
        problems.append(f"--threads must be >= 1, got {args.threads}")
    for k in ("steps", "window", "sink"):
        v = getattr(args, k, None)
        if v is not None and v < (0 if k == "sink" else 1):
            problems.append(f"--{k} must be >= {0 if k == 'sink' else 1}, got {v}")
    if problems:
        print("worldloom play: " + "; ".join(problems), file=sys.stderr)
        return 2
    overrides = {k: getattr(args, k) for k in ("steps", "window", "sink") if getattr(args, k, None) is not None}
    try:
        run(cks, host=args.host, port=args.port, fps=args.fps, max_sessions=args.max_sessions,
            idle_timeout=args.idle_timeout, sim_overrides=overrides or None, open_browser=args.open,
            speed=speed_options(args), threads=args.threads)
    except KeyboardInterrupt:
        pass
    return 0
