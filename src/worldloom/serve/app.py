"""The play server: a FastAPI app with one WebSocket per player and one static page.

``worldloom play --checkpoint arena`` -> :func:`worldloom.cli.play.play_main` -> :func:`run`. Routes:

- ``GET /`` the page (``static/index.html`` + ``static/app.js``; no build step).
- ``GET /api/info`` checkpoints, fps, limits, sessions in use.
- ``WS /ws`` a play session (protocol: ``docs/PROTOCOL.md``, :mod:`.protocol`).
- ``GET /record/<session id>?format=mp4|gif`` a zip of the session's video + ``actions.json``.

Key choices:

- All torch work happens in the single :class:`~.session.Worker` thread; the event loop only
  parses messages into slots and sends what the worker produced (see :mod:`.session`).
- Each session has one sender task, so sends on a socket never interleave; the receive loop
  answers every bad message with an ``error`` and keeps going. Anything else it hits is a bug: it
  is logged with its traceback, and the session ends with an ``internal_error`` reply and close
  code 1011, never by a silently dropped socket.
- Serving under uvicorn (request deadlines, the UTF-8 log filter, a server thread for tests and the
  bench): :mod:`.server`.
- Safety: binds 127.0.0.1 unless told otherwise; every request passes :mod:`.guard` first (only
  this server's own Host/Origin names or ``--allow-origin`` ones, else 403; a token for any bind
  that is not loopback; CSP and anti-framing headers); a client can only name checkpoints from the
  configured list (by name, never a path); the only files served are the two fixed static files;
  a recording is reachable only through its session's unguessable id, while the session lives.
- Extra players beyond ``max_sessions`` get a ``busy`` error and close code 1013; sessions
  without input for ``idle_timeout`` s get an ``idle`` error and close code 4000.
- Recordings are encoded frame by frame into an anonymous temp file that is streamed back (peak
  RSS of a 600-frame mp4/gif: +295/+642 MB before, +1/+6 MB now); one download per session at a
  time (else 429) and ``max_encodes`` encodes at once (default 2, else 503 + ``Retry-After``):
  :mod:`.record`.
"""

import asyncio
import contextlib
import logging
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import IO, Any

from ..hardware import setup_cpu
from . import protocol as P
from .guard import Guard, GuardMiddleware, content_security_policy, is_loopback
from .record import CHUNK, MAX_ENCODES, RETRY_AFTER, EncodeSlots, trim_heap, video_zip
from .server import UTF8_FILTER, play_urls, uvicorn_config
from .session import Session, Worker

log = logging.getLogger("worldloom.serve")
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


async def _read_chunks(f: IO[bytes], size: int, done: Any) -> AsyncIterator[bytes]:
    """``size`` bytes of ``f`` in chunks, read off the event loop. ``done()`` runs before the last
    chunk goes out, so a client that asks again as soon as it has the whole body is not refused as
    still downloading."""
    left = size
    while left > 0:
        chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        if left <= 0:
            done()
        yield chunk


def create_app(checkpoints: dict[str, Any] | list[str], default: str | None = None, max_sessions: int = 4,
               idle_timeout: float = 60.0, fps: float = 30.0, sim_overrides: dict[str, Any] | None = None,
               record_frames: int = 1800, seed: int = 0, speed: dict[str, Any] | None = None, threads: int = 1,
               host: str = "127.0.0.1", allow_origins: list[str] | tuple[str, ...] = (),
               token: str | None = None, max_encodes: int = MAX_ENCODES) -> Any:
    """The ASGI app. ``checkpoints``: names/paths, or name -> path or loaded ``WorldModel``
    (tests pass models). ``fps`` 0 = unpaced: one frame per action message (for benches).
    ``speed``: ``load()`` options (precision, compile) for checkpoints given by name or path.
    ``host``: the bind address (its names are allowed as Host/Origin); ``allow_origins``: more
    origins (``http(s)://host[:port]``); ``token``: required on every request when given, and
    mandatory for a ``host`` that is not loopback (see :mod:`.guard`); ``max_encodes``: recording
    encodes at once across sessions (see :mod:`.record`)."""
    # Imported here so that ``add_play_arguments`` stays light; this module has no
    # ``from __future__ import annotations``, so FastAPI sees these classes in the signatures below.
    from fastapi import FastAPI, Request, WebSocket
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

    sources = _names(checkpoints)
    if not sources:
        raise ValueError("create_app: no checkpoints configured")
    default = default if default is not None else next(iter(sources))
    if default not in sources:
        raise ValueError(f"default checkpoint {default!r} is not among the configured {sorted(sources)}")
    if max_sessions < 1 or idle_timeout <= 0 or fps < 0 or record_frames < 1:
        raise ValueError("max_sessions >= 1, idle_timeout > 0, fps >= 0 and record_frames >= 1 are required")
    guard = Guard.create(host, allow_origins, token, csp=content_security_policy(_static("index.html")))
    worker = Worker(sources, fps=fps, sim_overrides=sim_overrides, speed=speed, threads=threads)
    slots = EncodeSlots(max_encodes)  # /record: one download per session, max_encodes encodes at once
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
        logging.getLogger("uvicorn.error").addFilter(UTF8_FILTER)  # once: addFilter skips a filter it has
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
    app.state.worker, app.state.guard, app.state.record_slots = worker, guard, slots
    app.add_middleware(GuardMiddleware, guard=guard)

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

    class ZipResponse(StreamingResponse):
        """A ``/record`` reply streamed from its temp file; the file is closed (so deleted) and the
        session's download slot freed however the send ends, even when it never started (a client
        gone before the first chunk: the body generator never runs)."""

        def __init__(self, f: IO[bytes], size: int, done: Any, **kw: Any) -> None:
            super().__init__(_read_chunks(f, size, done), **kw)
            self.file, self.done = f, done

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                self.file.close()
                self.done()

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
        busy = slots.acquire(sid)  # no await between this and the encode's start: the check is atomic
        if busy == "session":
            return JSONResponse({"error": "this session's recording is already being downloaded; retry when that "
                                 "download has finished"}, status_code=429, headers={"Retry-After": str(RETRY_AFTER)})
        if busy == "server":
            return JSONResponse({"error": f"the server is already encoding {slots.max_encodes} recordings; retry in "
                                 f"{RETRY_AFTER} s"}, status_code=503, headers={"Retry-After": str(RETRY_AFTER)})
        try:
            out = await asyncio.to_thread(_encode, entries, meta, fmt, fps if fps > 0 else 15.0)
        except Exception as e:
            slots.sent(sid)
            log.exception("encoding a recording failed")
            return JSONResponse({"error": f"encoding the recording failed ({type(e).__name__}); see the server log"},
                                status_code=500)
        except BaseException:  # cancelled (shutdown): the thread's file closes when it is collected
            slots.sent(sid)
            raise
        size = out.seek(0, 2)
        out.seek(0)
        fname = f"worldloom-{meta.get('checkpoint')}-seed{meta.get('seed')}.zip"
        return ZipResponse(out, size, lambda: slots.sent(sid), media_type="application/zip",
                           headers={"Content-Disposition": f'attachment; filename="{fname}"',
                                    "Content-Length": str(size)})

    def _encode(entries: list[Any], meta: dict[str, Any], fmt: str, rate: float) -> IO[bytes]:
        """In a thread: the zip in an anonymous temp file (no name: gone when closed); then the
        server-wide encode slot is free."""
        out = tempfile.TemporaryFile(prefix="worldloom-record-", suffix=".zip")
        try:
            video_zip(out, entries, meta, fmt, rate)
        except BaseException:
            out.close()
            raise
        finally:
            del entries  # the recording's copy: gone before the heap is trimmed
            slots.encoded()
            trim_heap()
        return out

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
        except Exception as e:  # a disconnect arrives as a message, so this is a bug: say so, never drop silently
            log.exception("play session failed on a client message; closing it (1011)")
            s.close_code = 1011
            s.send_json(P.error("internal_error", f"the server failed on a message ({type(e).__name__}); "
                                "this session is closed (reload to play again)"))
        finally:
            worker.remove(s)
            if s.close_code is None:
                task.cancel()
            else:  # let the sender deliver the closing error
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 2.0)

    return app


def run(checkpoint: str | list[str] = "arena", host: str = "127.0.0.1", port: int = 8000, fps: float = 30.0,
        max_sessions: int = 4, idle_timeout: float = 60.0, sim_overrides: dict[str, Any] | None = None,
        open_browser: bool = False, speed: dict[str, Any] | None = None, threads: int = 1,
        allow_origins: list[str] | None = None, keys: dict[str, list[str]] | None = None) -> None:
    """Serve until interrupted (``worldloom play``); the first checkpoint is the default. A bind
    that is not loopback gets a fresh random token, printed in the URL (see :mod:`.guard`). ``keys``:
    a checked keys override (``envs.keys.check_keys``) rebinding play keys and pointer axes of every
    checkpoint (keys are play's, not the model's: the actions and axes stay)."""
    import uvicorn

    setup_cpu(1)  # this thread serves the event loop; the worker sets its own
    from ..runtime.loading import load

    cks = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
    # Loaded before anything is served, so a broken checkpoint is one error line, not a URL and then a traceback.
    models = {name: load(src, **(speed or {})) for name, src in _names(cks).items()}
    if keys:
        from ..envs.keys import apply_spec_keys

        for name, m in models.items():
            m.action_spec = apply_spec_keys(m.action_spec, keys, name)
    token = None if is_loopback(host) else secrets.token_urlsafe(24)
    app = create_app(models, max_sessions=max_sessions, idle_timeout=idle_timeout, fps=fps, sim_overrides=sim_overrides,
                     speed=speed, threads=threads, host=host, allow_origins=allow_origins or (), token=token)
    urls = play_urls(host, port, token)
    if token is not None:
        print(f"worldloom play: serving on {host}: whoever can reach it and has the token in the URL can play",
              file=sys.stderr)
    print(f"worldloom play: {urls[0]}  (checkpoints {cks}, {fps:g} fps, {max_sessions} players max)", flush=True)
    for url in urls[1:]:
        print(f"  or {url}", flush=True)
    if open_browser:  # best effort: a headless machine has no browser, and that is fine
        import webbrowser

        threading.Timer(1.5, lambda: webbrowser.open(urls[-1])).start()
    uvicorn.Server(uvicorn_config(app, host=host, port=port)).run()
