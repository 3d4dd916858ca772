"""The play-server tests' WebSocket client and message fuzzer (used by conftest's fixtures and the tests)."""

from __future__ import annotations

import contextlib
import json
import random
import time
from typing import Any

from worldloom.serve import protocol as P

KINDS = ("action", "reset", "truth", "pause", "ping")


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



def fuzz_messages(n: int, seed: int = 0, checkpoints: frozenset[str] = frozenset({"tiny"})) -> list[str | bytes]:
    """``n`` client messages that are all invalid (each checked with the parser against the arena's
    actions), covering every message kind and every way to be wrong: binary, not UTF-8-clean text,
    not JSON, truncated, too deep, too large, not an object, unknown type, unknown or missing fields,
    and each kind's fields with wrong types and out-of-range values."""
    from worldloom.envs.arena import ARENA_ACTIONS

    rng = random.Random(seed)
    words = [*KINDS, "fly", "", "ACTION", "frame"]
    values = [None, True, False, -1, 0, 5, 2**40, 10**400, -10**400, 1.5, -0.0, 1e300, "right", "jump", "", [], {},
              [1, 2], {"a": 1}, "../../etc/passwd", "/etc/passwd", "\u2603" * 10]
    fields = {"action": ("action", "seq"), "reset": ("seed", "checkpoint"), "truth": ("on",), "pause": ("on",),
              "ping": ("t",)}

    def gen() -> str | bytes:
        k = rng.randrange(11)
        if k == 0:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        if k == 1:
            return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(0, 80)))
        if k == 2:
            return json.dumps(rng.choice(values))
        if k == 3:
            return json.dumps({"type": rng.choice(words), rng.choice(["action", "on", "seed", "t", "x"]): rng.choice(values)})
        if k in (4, 5):  # one kind, each of its fields set at random (some left out)
            kind = rng.choice(KINDS)
            d: dict = {"type": kind}
            for f in fields[kind]:
                if rng.random() < 0.8:
                    d[f] = rng.choice(values)
            return json.dumps(d)
        if k == 6:
            return "x" * rng.randrange(P.MAX_MESSAGE_BYTES + 1, 100_000)
        if k == 7:
            s = json.dumps({"type": rng.choice(KINDS), "action": 1, "seq": 1})
            return s[: rng.randrange(len(s))]  # truncated JSON
        if k == 8:  # a valid message with one unknown field
            return json.dumps({"type": rng.choice(KINDS), "on": True, "action": 1, rng.choice(["x", "Seq", "ON"]): 1})
        if k == 9:
            return json.dumps({"type": rng.choice(KINDS), "t": rng.choice(values)})[: rng.randrange(2, 40)] + "}" * 3
        return "[" * rng.randrange(1, 1500) + "]" * rng.randrange(0, 1500)

    out: list[str | bytes] = []
    while len(out) < n:
        m = gen()
        try:
            P.parse_message(m, ARENA_ACTIONS, checkpoints)
        except P.ProtocolError:
            out.append(m)
    return out


def message_kind(m: str | bytes) -> str:
    """The client message kind a fuzzed message claims (its JSON 'type'), else what it is instead."""
    if isinstance(m, bytes):
        return "binary"
    try:
        d = json.loads(m)
    except (ValueError, RecursionError):
        return "not_json"
    t = d.get("type") if isinstance(d, dict) else None
    return t if t in KINDS else "other"
