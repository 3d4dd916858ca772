"""Play-server fixtures: a real uvicorn server in a thread on a free port, and a small WS client."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import pytest

from worldloom.serve import protocol as P


class Client:
    """A websockets sync client that sorts JSON messages from frames."""

    def __init__(self, port: int) -> None:
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(f"ws://127.0.0.1:{port}/ws", max_size=P.TRANSPORT_MAX_BYTES,
                                                    open_timeout=30))
        self.messages: list[dict[str, Any]] = []

    def send(self, obj: Any) -> None:
        self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    def recv(self, timeout: float = 30.0) -> dict[str, Any] | tuple[dict[str, Any], list[Any]]:
        m = self.ws.recv(timeout=timeout)
        return P.decode_frame(m) if isinstance(m, bytes) else json.loads(m)

    def json(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        """The next JSON message of type ``kind`` (frames and other messages are skipped)."""
        end = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.01, end - time.monotonic()))
            if isinstance(m, dict):
                self.messages.append(m)
                if m["type"] == kind:
                    return m

    def frame(self, timeout: float = 30.0, where: Any = None) -> tuple[dict[str, Any], list[Any]]:
        """The next frame (whose header satisfies ``where``, if given)."""
        end = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.01, end - time.monotonic()))
            if isinstance(m, dict):
                self.messages.append(m)
            elif where is None or where(m[0]):
                return m

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def serve(tiny_world):
    """``serve(**create_app kwargs)`` -> a started ServerThread (default checkpoints: {"tiny": tiny_world});
    ``request_timeout`` goes to the ServerThread."""
    from worldloom.serve.app import ServerThread, create_app

    started: list[Any] = []

    def start(**kw: Any) -> Any:
        kw.setdefault("fps", 10.0)
        server_kw = {"request_timeout": kw.pop("request_timeout")} if "request_timeout" in kw else {}
        app = create_app(kw.pop("checkpoints", {"tiny": tiny_world}), **kw)
        srv = ServerThread(app, **server_kw).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def client():
    """``client(server)`` -> a connected Client (closed at teardown)."""
    made: list[Client] = []

    def connect(srv: Any) -> Client:
        c = Client(srv.port)
        made.append(c)
        return c

    yield connect
    for c in made:
        try:
            c.close()
        except Exception:
            pass
