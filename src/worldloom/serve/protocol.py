"""The play protocol: parsing and validation of client messages, and the binary frame format.

Everything here is pure (no sockets, no torch), so it is unit-tested on its own; docs/PROTOCOL.md
is the prose version and must agree with it.

Key choices:

- **Client -> server: JSON text only**, one object per message with a ``type``; at most
  :data:`MAX_MESSAGE_BYTES`. Anything else (binary, too large, not JSON, not an object, an unknown
  type, a missing/extra/mistyped/out-of-range field) raises :class:`ProtocolError` whose ``code``
  and message go back to the client as an ``error`` reply; the session carries on.
- **Strict fields.** Unknown fields are errors (a typo is reported, not silently ignored); ints
  must be JSON integers (``true`` and ``2.0`` are not actions); NaN/Infinity are refused.
- **One parse for every number** (:func:`parse_number`): type, finiteness and range are checked
  before anything converts or computes with the value. JSON integers are unbounded in Python, so a
  300-digit ``t`` would overflow ``float()`` or ``math.isfinite`` (an uncaught ``OverflowError``);
  comparing it with the bounds first is exact and cannot overflow.
- **Server -> client frames are binary**: ``uint32 LE header length`` + UTF-8 JSON header + raw
  RGB panels (model, then truth when shown), row-major ``(H, W, 3)`` uint8 each. Raw RGB costs
  ~5 us per 64x64 frame to build, PNG via PIL ~0.8-1 ms (measured here), and is trivial to draw
  (RGB -> RGBA ``ImageData``). 12 KB per panel is nothing on localhost.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from ..actions import ActionSpec

VERSION = 1
MAX_MESSAGE_BYTES = 4096
"""Largest client message answered normally; larger ones get a ``too_large`` error."""
TRANSPORT_MAX_BYTES = 1 << 20
"""WebSocket frame limit given to the server; beyond it the transport closes with 1009."""
MAX_SEED = 2**31 - 1
MAX_SEQ = 2**53
"""Largest ``action.seq``, and largest ``|ping.t|``: the integers a JavaScript number holds exactly."""

# Error codes (see docs/PROTOCOL.md). Codes marked "closes" end the session after the reply.
ERROR_CODES = {
    "bad_json": "the message is not valid JSON",
    "bad_message": "the JSON is not an object with a string 'type', or has unknown fields",
    "unknown_type": "the 'type' is not one of the client message types",
    "bad_field": "a field is missing or has the wrong type",
    "out_of_range": "a field's value is outside its allowed range or set",
    "too_large": "the message is larger than MAX_MESSAGE_BYTES",
    "binary_not_accepted": "clients send JSON text; binary messages are not accepted",
    "unknown_checkpoint": "the checkpoint is not in the server's configured list",
    "not_ready": "the session has no running world yet (wait for 'ready')",
    "reset_failed": "the world could not be started (model or context error)",
    "step_failed": "generating a frame failed; send 'reset' to start over",
    "internal_error": "the server failed handling a message; it is logged (closes, code 1011)",
    "busy": "the server already has its maximum number of sessions (closes)",
    "idle": "no input for longer than the idle timeout (closes)",
    "shutting_down": "the server is stopping (closes)",
}


class ProtocolError(ValueError):
    """A client message that cannot be accepted; ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code, self.message, self.ref = code, message, ref


@dataclass(frozen=True)
class Action:
    """Set the held action (``0`` = no-op releases). ``seq`` is echoed in frame headers."""

    action: int
    seq: int | None = None
    axes: tuple[float, ...] | None = None
    """Raw values of the world's continuous axes while held (None: every axis at rest)."""


@dataclass(frozen=True)
class Reset:
    """Start over: new context (env reset with ``seed``), optionally another configured checkpoint."""

    seed: int | None = None
    checkpoint: str | None = None


@dataclass(frozen=True)
class Truth:
    """Show (or hide) the real env's frame next to the model's, with PSNR."""

    on: bool


@dataclass(frozen=True)
class Pause:
    """Stop (or resume) generating frames, e.g. while the page is hidden."""

    on: bool


@dataclass(frozen=True)
class Ping:
    """Liveness check; ``t`` is echoed in the ``pong``. Does not count as input for idle reaping."""

    t: float | None = None


Message = Union[Action, Reset, Truth, Pause, Ping]
# type -> (allowed fields, required fields)
_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "action": ({"type", "action", "seq", "axes"}, {"action"}),
    "reset": ({"type", "seed", "checkpoint"}, set()),
    "truth": ({"type", "on"}, {"on"}),
    "pause": ({"type", "on"}, {"on"}),
    "ping": ({"type", "t"}, set()),
}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _show(v: Any) -> str:
    """A client value quoted in an error message, at most 40 characters (a number may have 4000 digits)."""
    s = json.dumps(v)
    return s if len(s) <= 40 else s[:37] + "..."


def parse_number(v: Any, key: str, lo: int, hi: int, ref: str | None = None, integer: bool = True,
                 valid: str | None = None) -> int | float:
    """The one parse of every number a client sends: a JSON integer (``integer=False``: or a finite
    float) in ``lo..hi``, else ``bad_field`` / ``out_of_range``. ``valid`` words the allowed values
    in the error (default ``values are lo..hi``). The result converts to float without overflow."""
    kind = "an integer" if integer else "a finite number"
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) or \
            (isinstance(v, float) and not math.isfinite(v)):
        raise ProtocolError("bad_field", f"'{key}' must be {kind}, got {_show(v)}", ref)
    if not lo <= v <= hi:  # int/float comparison is exact in Python: no conversion, no overflow
        raise ProtocolError("out_of_range", f"'{key}' {_show(v)} is out of range: valid "
                            f"{valid or f'values are {lo}..{hi}'}", ref)
    return v


def _bool(d: dict[str, Any], key: str, ref: str) -> bool:
    v = d[key]
    if not isinstance(v, bool):
        raise ProtocolError("bad_field", f"'{key}' must be true or false, got {_show(v)}", ref)
    return v


def parse_action(value: Any, spec: ActionSpec, ref: str = "action") -> int:
    """An action id (int) or name (str) -> a valid id 0..n-1."""
    if isinstance(value, str):
        if value not in spec.names:
            raise ProtocolError("out_of_range", f"unknown action {value[:40]!r}; known: {list(spec.names)}", ref)
        return spec.names.index(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError("bad_field", f"'action' must be an id or a name, got {_show(value)}", ref)
    return int(parse_number(value, "action", 0, spec.n - 1, ref,
                            valid=f"ids are 0..{spec.n - 1} ({list(spec.names)}), or their names"))


def parse_axes(value: Any, spec: ActionSpec, ref: str = "action") -> tuple[float, ...]:
    """A list of one finite number per axis of ``spec``, each inside its range."""
    if not isinstance(value, list) or len(value) != spec.n_axes:
        raise ProtocolError("bad_field", f"'axes' must be a list of {spec.n_axes} numbers "
                            f"{[a.name for a in spec.axes]}, got {_show(value)}", ref)
    out = []
    for a, v in zip(spec.axes, value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
            raise ProtocolError("bad_field", f"'axes' value for {a.name!r} must be a finite number, got {_show(v)}", ref)
        if not a.low <= v <= a.high:
            raise ProtocolError("out_of_range", f"'axes' value {_show(v)} for {a.name!r} is out of range: valid "
                                f"values are {a.low}..{a.high}", ref)
        out.append(float(v))
    return tuple(out)


def parse_message(data: str | bytes | None, spec: ActionSpec | None, checkpoints: Collection[str]) -> Message:
    """Validate one client message; raise :class:`ProtocolError` with a clear reason otherwise.

    ``spec`` is the ActionSpec of the session's running checkpoint (None before the first 'ready':
    actions are then answered with ``not_ready``)."""
    if data is None:
        raise ProtocolError("bad_message", "empty message")
    if isinstance(data, (bytes, bytearray)):
        raise ProtocolError("binary_not_accepted", ERROR_CODES["binary_not_accepted"])
    if len(data) > MAX_MESSAGE_BYTES or len(data.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"message of {len(data)} characters exceeds {MAX_MESSAGE_BYTES} bytes")
    try:
        d = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ProtocolError("bad_json", f"not valid JSON: {str(e)[:80]}") from None
    if not isinstance(d, dict) or not isinstance(d.get("type"), str):
        raise ProtocolError("bad_message", "expected a JSON object with a string 'type'")
    kind = d["type"]
    if kind not in _FIELDS:
        raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r}; known: {sorted(_FIELDS)}")
    allowed, required = _FIELDS[kind]
    extra = sorted(set(d) - allowed)
    if extra:
        raise ProtocolError("bad_message", f"'{kind}' has unknown fields {[k[:40] for k in extra]}; "
                            f"allowed: {sorted(allowed - {'type'})}", kind)
    missing = sorted(required - set(d))
    if missing:
        raise ProtocolError("bad_field", f"'{kind}' is missing {missing}", kind)
    if kind == "action":
        seq = int(parse_number(d["seq"], "seq", 0, MAX_SEQ, kind)) if d.get("seq") is not None else None
        if spec is None:
            raise ProtocolError("not_ready", "no world is running yet; wait for 'ready'", kind)
        axes = parse_axes(d["axes"], spec, kind) if d.get("axes") is not None else None
        return Action(parse_action(d["action"], spec, kind), seq, axes)
    if kind == "reset":
        seed = int(parse_number(d["seed"], "seed", 0, MAX_SEED, kind)) if d.get("seed") is not None else None
        ck = d.get("checkpoint")
        if ck is not None:
            if not isinstance(ck, str):
                raise ProtocolError("bad_field", "'checkpoint' must be a string (a configured name)", kind)
            if ck not in checkpoints:
                raise ProtocolError("unknown_checkpoint", f"checkpoint {ck[:60]!r} is not served here; "
                                    f"configured: {sorted(checkpoints)}", kind)
        return Reset(seed, ck)
    if kind in ("truth", "pause"):
        on = _bool(d, "on", kind)
        return Truth(on) if kind == "truth" else Pause(on)
    t = d.get("t")
    return Ping(None if t is None else float(parse_number(t, "t", -MAX_SEQ, MAX_SEQ, kind, integer=False)))


# --- server -> client ------------------------------------------------------------------------------


def dumps(kind: str, **fields: Any) -> str:
    """A server JSON message ``{"type": kind, ...}``."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":"), allow_nan=False)


def error(code: str, message: str, ref: str | None = None) -> str:
    assert code in ERROR_CODES, code
    return dumps("error", code=code, message=message, **({"ref": ref} if ref else {}))


def encode_frame(header: dict[str, Any], panels: list[np.ndarray]) -> bytes:
    """``uint32 LE len`` + JSON header (+ width/height/panels filled in) + raw RGB panels."""
    h, w = panels[0].shape[:2]
    head = json.dumps({"type": "frame", **header, "width": w, "height": h, "panels": len(panels)},
                      separators=(",", ":"), allow_nan=False).encode()
    return b"".join([len(head).to_bytes(4, "little"), head] + [np.ascontiguousarray(p, np.uint8).tobytes() for p in panels])


def decode_frame(data: bytes) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Inverse of :func:`encode_frame` (used by the bench client and the tests)."""
    n = int.from_bytes(data[:4], "little")
    header = json.loads(data[4:4 + n])
    h, w, k = header["height"], header["width"], header["panels"]
    body = np.frombuffer(data, np.uint8, offset=4 + n)
    if body.size != k * h * w * 3:
        raise ValueError(f"frame body has {body.size} bytes, expected {k} x {h} x {w} x 3")
    return header, list(body.reshape(k, h, w, 3))
