"""Play server: ``worldloom play`` serves a world model to browsers over WebSockets.

- :mod:`.app` the FastAPI app (:func:`~.app.create_app`) and :func:`~.app.run`, which serves it
  (``worldloom play``'s options and checks: :mod:`worldloom.cli.play`).
- :mod:`.server` running it under uvicorn: request deadlines, the log filter, :class:`~.server.ServerThread`.
- :mod:`.session` sessions and the single inference worker thread (all torch work).
- :mod:`.protocol` message validation and the binary frame format (docs/PROTOCOL.md).
- :mod:`.record` ``/record`` downloads: frame-by-frame encodes into a streamed temp zip, one per session, capped.
- :mod:`.guard` who may connect: the Host/Origin allow-list, the token, security headers.
- :mod:`.bench_ws` ``worldloom bench --mode ws``: frames through a real WebSocket.

Nothing heavy at import: fastapi, uvicorn and torch are imported when a server is built.
"""
