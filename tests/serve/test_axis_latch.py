"""The play worker's slots: an axis tapped between two ticks drives one frame, each axis on its own."""

from __future__ import annotations

import asyncio

from worldloom.actions import ActionSpec, Axis
from worldloom.serve import protocol as P
from worldloom.serve.session import Session, Worker

SPEC = ActionSpec(names=("noop",), axes=(Axis("steer", -1.0, 1.0), Axis("gas", 0.2, 1.0)))  # gas rests at 0.2


def _ready() -> tuple[Worker, Session]:
    loop = asyncio.new_event_loop()
    w = Worker({}, fps=0.0)  # unpaced: one tick per action message, the newest wins
    s = Session(loop, "m", seed=0, record_frames=1)
    s.pending_reset, s.sim, s.spec = None, object(), SPEC  # as after a reset, without a model
    w.add(s)
    return w, s


def _tick_axes(w: Worker) -> tuple[float, ...] | None:
    kind, s, (action, seq, t_ref, truth, axes) = w._next_job()
    assert kind == "step"
    s.inflight = False  # as when the frame has gone out
    return axes


def test_a_tap_on_one_axis_latches_while_another_is_held() -> None:
    w, s = _ready()
    w.apply(s, P.Action(0, 1, (0.0, 0.7)))  # gas held
    assert _tick_axes(w) == (0.0, 0.7)
    w.apply(s, P.Action(0, 2, (-1.0, 0.7)))  # steer tapped left ...
    w.apply(s, P.Action(0, 3, (0.0, 0.7)))  # ... and released before the next tick, gas still held
    assert _tick_axes(w) == (-1.0, 0.7)  # the tap drives this frame, the held gas too
    w.apply(s, P.Action(0, 4, (0.0, 0.7)))
    assert _tick_axes(w) == (0.0, 0.7)  # then the held values again
    w.apply(s, P.Action(0, 5, (0.0, 0.9)))  # gas pressed further ...
    w.apply(s, P.Action(0, 6, (0.0, 0.2)))  # ... and let go to its rest (the range's low end, not 0)
    assert _tick_axes(w) == (0.0, 0.9)
    s.loop.close()
