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
  answers every bad message with an ``error`` and keeps going. Anything else it hits is a bug: it
  is logged with its traceback, and the session ends with an ``internal_error`` reply and close
  code 1011, never by a silently dropped socket.
- Safety: binds 127.0.0.1 unless told otherwise; every request passes :mod:`.guard` first (only
  this server's own Host/Origin names or ``--allow-origin`` ones, else 403; a token for any bind
  that is not loopback; CSP and anti-framing headers); a client can only name checkpoints from the
  configured list (by name, never a path); the only files served are the two fixed static files;
  a recording is reachable only through its session's unguessable id, while the session lives.
- Timeouts: uvicorn has no deadline for receiving a request (its keep-alive timer is reset by every
  byte), so a client could hold connections open forever by sending a request slowly or not at all:
  :func:`_deadline_h11` closes a connection whose request is not complete within
  :data:`REQUEST_TIMEOUT` s of its first byte (or of connecting). Keep-alive (5 s), WebSocket
  pings (20 s, 20 s to answer) and the shutdown grace (5 s) are set explicitly (:func:`uvicorn_config`).
- Log floods: uvicorn logs a traceback for every text frame that is not UTF-8 (then closes with
  1007); :class:`_InvalidUtf8Filter` turns that into one warning line per 10 s with a count.
- Extra players beyond ``max_sessions`` get a ``busy`` error and close code 1013; sessions
  without input for ``idle_timeout`` s get an ``idle`` error and close code 4000.
- Recordings are encoded frame by frame into an anonymous temp file that is streamed back (peak
  RSS of a 600-frame mp4/gif: +295/+642 MB before, +1/+6 MB now); one download per session at a
  time (else 429) and ``max_encodes`` encodes at once (default 2, else 503 + ``Retry-After``):
  :mod:`.record`.
"""

import argparse
import asyncio
import contextlib
import logging
import secrets
import socket
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
from .guard import Guard, GuardMiddleware, content_security_policy, is_loopback, is_wildcard, parse_origin, url_host
from .record import CHUNK, MAX_ENCODES, RETRY_AFTER, EncodeSlots, trim_heap, video_zip
from .session import Session, Worker

log = logging.getLogger("worldloom.serve")
MAX_PENDING = 256  # unsent JSON replies per session before its receive loop waits
REQUEST_TIMEOUT = 10.0  # s to receive a whole HTTP request (or WebSocket handshake), from its first byte


class _InvalidUtf8Filter(logging.Filter):
    """On uvicorn's error logger: its traceback per non-UTF-8 text frame (one per connection, as
    fast as a client reconnects) becomes one warning line per ``interval`` s, counting the rest."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval, self.next_at, self.skipped = interval, 0.0, 0
        self.lock = threading.Lock()  # servers in several threads (tests, the bench) share this filter

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Invalid UTF-8"):
            return True
        with self.lock:
            now = time.monotonic()
            if now < self.next_at:
                self.skipped += 1
                return False
            skipped, self.skipped, self.next_at = self.skipped, 0, now + self.interval
        log.warning("a client sent a text frame that is not UTF-8; its connection was closed with 1007%s",
                    f" ({skipped} more in the last {self.interval:g} s not logged)" if skipped else "")
        return False


UTF8_FILTER = _InvalidUtf8Filter()


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


def _deadline_h11(timeout: float) -> type:
    """uvicorn's h11 protocol, closing a connection whose request has not fully arrived within
    ``timeout`` s of its first byte (or of connecting, for the first request). The deadline is
    disarmed once the request is in (a slow response, e.g. a video zip, is not cut) and when the
    connection becomes a WebSocket (which has its own pings)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineH11Protocol(H11Protocol):
        deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # IDLE after data = a partial request head; SEND_BODY = a body still coming
            if self.transport.get_protocol() is self and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
                self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self.deadline is None:
                self.deadline = self.loop.call_later(timeout, self._expired)

        def _disarm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def _expired(self) -> None:
            self.deadline = None
            if self.transport.get_protocol() is self and not self.transport.is_closing():
                self.transport.close()

    return DeadlineH11Protocol


def uvicorn_config(app: Any, request_timeout: float = REQUEST_TIMEOUT, **kw: Any) -> Any:
    """The uvicorn settings of every play server (limits and timeouts: see the module docstring)."""
    import uvicorn

    return uvicorn.Config(app, log_level="warning", ws_max_size=P.TRANSPORT_MAX_BYTES, lifespan="on",
                          http=_deadline_h11(request_timeout), timeout_keep_alive=5, ws_ping_interval=20.0,
                          ws_ping_timeout=20.0, timeout_graceful_shutdown=5, **kw)


class ServerThread:
    """uvicorn serving ``app`` in a background thread on ``host:port`` (0 = a free port)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.app, self.host, self.port = app, host, self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(app, request_timeout))
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


def play_urls(host: str, port: int, token: str | None) -> list[str]:
    """The page URLs to print for a server on ``host:port``, with ``?token=`` when it has one: the
    bound address, or for a wildcard bind this machine's hostname, then 127.0.0.1 (the local one last)."""
    names = [socket.gethostname(), "127.0.0.1"] if is_wildcard(host) else [host]
    return [f"http://{url_host(n)}:{port}/" + (f"?token={token}" if token is not None else "") for n in names]


def run(checkpoint: str | list[str] = "arena", host: str = "127.0.0.1", port: int = 8000, fps: float = 30.0,
        max_sessions: int = 4, idle_timeout: float = 60.0, sim_overrides: dict[str, Any] | None = None,
        open_browser: bool = False, speed: dict[str, Any] | None = None, threads: int = 1,
        allow_origins: list[str] | None = None) -> None:
    """Serve until interrupted (``worldloom play``); the first checkpoint is the default. A bind
    that is not loopback gets a fresh random token, printed in the URL (see :mod:`.guard`)."""
    import uvicorn

    setup_cpu(1)  # this thread serves the event loop; the worker sets its own
    from ..runtime.loading import load

    cks = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
    # Loaded before anything is served, so a broken checkpoint is one error line, not a URL and then a traceback.
    models = {name: load(src, **(speed or {})) for name, src in _names(cks).items()}
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


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """--device / --precision / --compile: where and how the model runs (worldloom.runtime.speed)."""
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, cuda:N, mps or auto (default: auto, a GPU where there is one, else the CPU)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default=None,
                        help="weights/activations: fp32, bf16, or int8 linear layers (default: the checkpoint's "
                             "'speed' setting, else fp32)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the transformer blocks and the decoder (default: the checkpoint's)")


def speed_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``load()`` options given on the command line (absent = the checkpoint's default; device: auto)."""
    return {k: getattr(args, k) for k in ("device", "precision", "compile") if getattr(args, k, None) is not None}


def add_play_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``worldloom play`` (see ``worldloom.cli.run``)."""
    parser.add_argument("--checkpoint", action="append", default=None,
                        help="bundled name or checkpoint dir; repeat to offer several (first = default; default: arena)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="bind address (default 127.0.0.1: this machine only); any other needs the random token "
                             "printed in the URL")
    parser.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                        help="also accept pages from ORIGIN (http(s)://host[:port]), and ORIGIN's host:port as the "
                             "Host (a name or port forward this server is reached by); repeatable. Default: only "
                             "localhost, 127.0.0.1, [::1] and the bound host, on the server's port")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--fps", type=float, default=30.0, help="target frames/s per player (0 = one frame per action)")
    parser.add_argument("--max-sessions", type=int, default=4, help="players at once; more get 'busy' (default 4)")
    parser.add_argument("--idle-timeout", type=float, default=60.0, help="free a session after this many s without input")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps per frame (default: the checkpoint's)")
    parser.add_argument("--window", type=int, default=None, help="rolling context window (default: the checkpoint's)")
    parser.add_argument("--sink", type=int, default=None, help="attention-sink frames (default: the checkpoint's)")
    parser.add_argument("--memory", default=None, help="context policy beyond the window: window, sink, place or similar "
                                                       "(default: the checkpoint's; docs/PROTOCOL.md)")
    parser.add_argument("--memory-slots", type=int, default=None, help="memory frames attended per step (default: the checkpoint's)")
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
    for origin in args.allow_origin or []:
        try:
            parse_origin(origin)
        except ValueError as e:
            problems.append(f"--allow-origin: {e}")
    for k in ("steps", "window", "sink", "memory_slots"):
        v = getattr(args, k, None)
        if v is not None and v < (0 if k == "sink" else 1):
            problems.append(f"--{k.replace('_', '-')} must be >= {0 if k == 'sink' else 1}, got {v}")
    from ..memory import MEMORIES

    if args.memory is not None and args.memory not in MEMORIES:
        problems.append(f"--memory {args.memory!r}: unknown; known: {', '.join(MEMORIES)}")
    if problems:
        print("worldloom play: " + "; ".join(problems), file=sys.stderr)
        return 2
    overrides = {k: getattr(args, k) for k in ("steps", "window", "sink", "memory", "memory_slots") if getattr(args, k, None) is not None}
    try:
        run(cks, host=args.host, port=args.port, fps=args.fps, max_sessions=args.max_sessions,
            idle_timeout=args.idle_timeout, sim_overrides=overrides or None, open_browser=args.open,
            speed=speed_options(args), threads=args.threads, allow_origins=args.allow_origin)
    except KeyboardInterrupt:
        pass
    return 0
