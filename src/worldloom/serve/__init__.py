"""Play server: ``worldloom play`` serves a world model to browsers over WebSockets.

- :mod:`.app` the FastAPI app (:func:`~.app.create_app`), :func:`~.app.run`, the CLI hooks
  (:func:`~.app.add_play_arguments`, :func:`~.app.play_main`) and :class:`~.app.ServerThread`.
- :mod:`.session` sessions and the single inference worker thread (all torch work).
- :mod:`.protocol` message validation and the binary frame format (docs/PROTOCOL.md).
- :mod:`.record` ``/record`` downloads: frame-by-frame encodes into a streamed temp zip, one per session, capped.
- :mod:`.guard` who may connect: the Host/Origin allow-list, the token, security headers.
- :mod:`.bench_ws` ``worldloom bench --mode ws``: frames through a real WebSocket.

Nothing heavy at import: fastapi, uvicorn and torch are imported when a server is built.
"""
