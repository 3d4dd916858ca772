"""Play-server fixtures: a real uvicorn server in a thread on a free port, and a small WS client."""

from __future__ import annotations

from typing import Any

import pytest

from wsclient import Client


@pytest.fixture
def serve(tiny_world):
    """``serve(**create_app kwargs)`` -> a started ServerThread (default checkpoints: {"tiny": tiny_world});
    ``request_timeout`` goes to the ServerThread."""
    from worldloom.serve.app import create_app
    from worldloom.serve.server import ServerThread

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
