"""Running the play app under uvicorn: request deadlines, one log filter, and a server in a thread.

Key choices:

- Timeouts: uvicorn has no deadline for receiving a request (its keep-alive timer is reset by every
  byte), so a client could hold connections open forever by sending a request slowly or not at all:
  :func:`_deadline_h11` closes a connection whose request is not complete within
  :data:`REQUEST_TIMEOUT` s of its first byte (or of connecting). Keep-alive (5 s), WebSocket
  pings (20 s, 20 s to answer) and the shutdown grace (5 s) are set explicitly (:func:`uvicorn_config`).
- Log floods: uvicorn logs a traceback for every text frame that is not UTF-8 (then closes with
  1007); :class:`_InvalidUtf8Filter` turns that into one warning line per 10 s with a count.
"""

import asyncio
import logging
import socket
import threading
import time
from typing import Any

from . import protocol as P
from .guard import is_wildcard, url_host

log = logging.getLogger("worldloom.serve")
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
