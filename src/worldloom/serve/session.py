"""Play sessions and the one inference worker thread that runs every session's world.

Architecture (measured in DESIGN.md §4: torch work from several Python threads doubled latency and
collapsed under contention; one thread with ``torch.set_num_threads(1)`` held 13-20 ms/frame):

- **One worker thread owns all torch work**: loading checkpoints, building Simulators, reset
  (context encoding), stepping, decoding. The asyncio side never touches torch. Models are loaded
  once per configured name and shared by every session's Simulator (weights shared, not copied);
  each session owns only its Simulator (KV cache, sampler state) and its truth env.
- **Slots, not queues.** The event loop writes each session's *latest* input into slots under one
  lock: ``held`` (the held action, 0 = no-op), ``latched`` (the newest non-no-op action since the
  last tick, so a tap shorter than a frame still moves the world; ``latched_axes`` the same per axis:
  its newest value off rest), ``pending_reset``, ``truth``,
  ``paused``. A tick consumes them; nothing an impatient client sends can pile up.
- **Pacing.** With ``fps > 0`` each session is due every ``1/fps`` s; the worker steps the due
  session with the earliest deadline, using the newest action (latched, else held, else no-op).
  A deadline that has passed is not caught up (``next_due = max(next_due + period, now)``), and a
  session whose previous frame is still being sent is skipped (``inflight``), so latency stays
  bounded when generation or the network falls behind. With ``fps == 0`` (unpaced; bench) a
  session is due once per new action message (coalesced: the newest wins).
- **Delivery.** The worker encodes the frame (raw RGB, ~5 us) and hands it to the event loop with
  ``call_soon_threadsafe``; the session's sender task sends it and clears ``inflight``. The truth env
  steps in lockstep with every frame, but after the frame is handed over unless the truth view is on,
  so its physics and rendering stay off the action-to-frame path.
- **Threads.** ``threads`` (``worldloom play --threads``, default 1) sets the worker's torch
  intra-op threads; the event loop and the player's browser need the rest of the cores.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from ..eval.metrics import psnr
from ..hardware import setup_cpu
from ..runtime.context import CONTEXT, start_context
from .record import Recording

from . import protocol as P

log = logging.getLogger("worldloom.serve")


def build_context(model: Any, seed: int) -> Any:
    """A reset + 3 no-op steps of the checkpoint's env, kept open for the truth view, else its bundled
    context: a :class:`~worldloom.runtime.context.Context` (see :func:`worldloom.runtime.context.start_context`)."""
    ctx = start_context(model, seed, np.zeros(CONTEXT, np.int64), keep_env=True)
    if ctx.env is not None:
        ctx.source += f" + {CONTEXT - 1} no-ops"
    return ctx


class Session:
    """One player. Slot fields are written by the event loop and read by the worker under
    ``Worker.lock``; the rest belong to the worker thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, checkpoint: str, seed: int, record_frames: int) -> None:
        self.id = secrets.token_urlsafe(16)  # also the capability for /record/<id>
        self.loop, self.wake = loop, asyncio.Event()
        self.outbox: deque[str] = deque()  # JSON messages to send (event-loop side)
        self.frame: tuple[bytes, float] | None = None  # newest frame + its action time (event-loop side)
        self.close_code: int | None = None
        # slots (under Worker.lock)
        self.held, self.latched, self.seq = 0, None, None
        self.held_axes: tuple[float, ...] | None = None  # the newest action message's axis values
        self.latched_axes: dict[int, float] = {}  # axis -> its newest value off rest since the last tick
        self.fresh, self.t_action = False, 0.0
        self.pending_reset: P.Reset | None = P.Reset(seed=seed, checkpoint=checkpoint)
        self.truth = self.paused = self.closed = self.inflight = False
        self.last_input = time.monotonic()
        # worker-owned
        self.checkpoint, self.seed = checkpoint, seed
        self.spec: Any = None  # ActionSpec of the running checkpoint (read by the event loop)
        self.sim: Any = None
        self.env: Any = None
        self.next_due = 0.0
        self.frames_out = 0
        self.latency_ms = self.encode_ms = self.send_ms = 0.0  # of the previous frame
        self.meta: dict[str, Any] = {}
        self.record = Recording(record_frames)  # the last record_frames frames, for /record
        self.rec_lock = threading.Lock()

    # --- event-loop side ----------------------------------------------------------------------------
    def send_json(self, text: str) -> None:
        self.outbox.append(text)
        self.wake.set()

    def _deliver(self, data: bytes | None, text: str | None, t_ref: float) -> None:
        if text is not None:
            self.outbox.append(text)
        if data is not None:
            self.frame = (data, t_ref)  # would replace an unsent frame (``inflight`` prevents that)
        self.wake.set()

    def post(self, data: bytes | None = None, text: str | None = None, t_ref: float = 0.0) -> None:
        """Worker -> event loop (thread-safe)."""
        try:
            self.loop.call_soon_threadsafe(self._deliver, data, text, t_ref)
        except RuntimeError:  # loop closed: the server is shutting down
            pass

    def recording(self) -> tuple[list[tuple[np.ndarray, np.ndarray | None, int, float | None]], dict[str, Any]]:
        with self.rec_lock:
            return self.record.entries(), dict(self.meta, dropped_frames=self.record.dropped)


class Worker:
    """The single inference thread: owns every model and Simulator; steps due sessions."""

    def __init__(self, checkpoints: dict[str, Any], fps: float = 30.0,
                 sim_overrides: dict[str, Any] | None = None, speed: dict[str, Any] | None = None,
                 threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.sources = dict(checkpoints)  # name -> path (str/Path) or a loaded WorldModel
        self.threads = threads  # torch intra-op threads of this worker (see the module docstring)
        self.models: dict[str, Any] = {}
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.sim_overrides = dict(sim_overrides or {})
        self.speed = dict(speed or {})  # load() options: precision, compile (None = the checkpoint's)
        self.lock = threading.Condition()
        self.sessions: dict[str, Session] = {}
        self._dead: list[Session] = []
        self._running = False
        self._thread: threading.Thread | None = None
        self._preload: list[str] = []
        self.preloaded = threading.Event()
        self.preload_error: BaseException | None = None

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self, preload: list[str] | None = None) -> None:
        self._preload = list(preload or [])
        self._running = True
        self._thread = threading.Thread(target=self._run, name="worldloom-inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self.lock:
            self._running = False
            self.lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- event-loop side -----------------------------------------------------------------------------
    def add(self, s: Session) -> None:
        with self.lock:
            self.sessions[s.id] = s
            self.lock.notify_all()

    def remove(self, s: Session) -> None:
        with self.lock:
            s.closed = True
            if self.sessions.pop(s.id, None) is not None:
                self._dead.append(s)
            self.lock.notify_all()

    def apply(self, s: Session, msg: P.Message) -> None:
        """Write a validated client message into the session's slots (newest wins)."""
        now = time.perf_counter()
        with self.lock:
            if not isinstance(msg, P.Ping):
                s.last_input = time.monotonic()
            if isinstance(msg, P.Action):
                s.held, s.seq, s.fresh, s.t_action = msg.action, msg.seq, True, now
                s.held_axes = msg.axes  # continuous parts follow the newest message (None: at rest)
                if msg.action != 0:
                    s.latched = msg.action
                if msg.axes is not None and s.spec is not None and len(msg.axes) == s.spec.n_axes:
                    for i, (v, a) in enumerate(zip(msg.axes, s.spec.axes)):
                        if v != a.rest:  # a tap shorter than a frame still pushes once, on each axis alone
                            s.latched_axes[i] = v
            elif isinstance(msg, P.Reset):
                s.pending_reset = msg
            elif isinstance(msg, P.Truth):
                s.truth = msg.on
            elif isinstance(msg, P.Pause):
                s.paused = msg.on
            self.lock.notify_all()

    def sent(self, s: Session, t_ref: float, t_send: float) -> None:
        """The sender finished sending a frame: clear ``inflight``, record its latency."""
        now = time.perf_counter()
        with self.lock:
            s.inflight = False
            s.latency_ms, s.send_ms = (now - t_ref) * 1e3, (now - t_send) * 1e3
            self.lock.notify_all()

    # --- worker thread -------------------------------------------------------------------------------
    def model(self, name: str) -> Any:
        if name not in self.models:
            import torch

            from ..runtime.loading import load

            src = self.sources[name]
            with torch.inference_mode(False):  # ordinary parameters, usable outside this thread too
                self.models[name] = load(src, **self.speed) if isinstance(src, (str, Path)) else src
        return self.models[name]

    def _run(self) -> None:
        import torch

        setup_cpu(self.threads)  # default 1 thread: see the module docstring
        try:
            from ..runtime.simulator import Simulator

            for name in self._preload:  # load, and check the sim overrides fit the model
                Simulator(self.model(name), batch=1, **self.sim_overrides)
        except BaseException as e:  # reported by the app's startup
            self.preload_error = e
        self.preloaded.set()
        with torch.inference_mode():
            while True:
                with self.lock:
                    if not self._running:
                        break
                    job = self._next_job()
                    if job is None:
                        self.lock.wait(self._wait_time())
                        continue
                try:
                    self._do(*job)
                except Exception:  # never let one session kill the worker
                    log.exception("worker job failed")
        for s in list(self.sessions.values()) + self._dead:
            self._free(s)

    def _free(self, s: Session) -> None:
        if s.env is not None:
            s.env.close()
        s.sim = s.env = None

    def _wait_time(self) -> float | None:
        if not self.period:
            return None
        due = [s.next_due for s in self.sessions.values() if s.sim is not None and not (s.inflight or s.paused)]
        return max(0.0, min(due) - time.perf_counter()) if due else None

    def _next_job(self) -> tuple[str, Session, Any] | None:
        """Pick one job under the lock, consuming the slots it needs."""
        if self._dead:
            return ("free", self._dead.pop(), None)
        for s in self.sessions.values():
            if s.pending_reset is not None and not s.inflight:
                msg, s.pending_reset = s.pending_reset, None
                return ("reset", s, msg)
        now = time.perf_counter()
        due = [s for s in self.sessions.values() if s.sim is not None and not (s.inflight or s.paused)
               and (s.fresh if not self.period else s.next_due <= now)]
        if not due:
            return None
        s = min(due, key=lambda x: x.next_due)
        a = s.latched if s.latched is not None else s.held
        a = a if s.spec is not None and a < s.spec.n else 0  # parsed against a checkpoint since replaced
        t_ref = s.t_action if s.fresh else now
        held_ax = s.held_axes
        if s.latched_axes and s.spec is not None and s.spec.n_axes:
            base = held_ax if held_ax is not None and len(held_ax) == s.spec.n_axes else [a.rest for a in s.spec.axes]
            held_ax = tuple(s.latched_axes.get(i, v) for i, v in enumerate(base))
        s.latched, s.latched_axes, s.fresh, s.inflight = None, {}, False, True
        s.next_due = max(s.next_due + self.period, now)
        ax = held_ax if s.spec is not None and s.spec.n_axes and held_ax is not None \
            and len(held_ax) == s.spec.n_axes else None
        return ("step", s, (a, s.seq, t_ref, s.truth, ax))

    def _do(self, kind: str, s: Session, arg: Any) -> None:
        if kind == "free":
            self._free(s)
        elif kind == "reset":
            self._reset(s, arg)
        else:
            try:
                self._step(s, *arg)
            except Exception as e:
                log.exception("step failed")
                self._free(s)
                with self.lock:
                    s.inflight = False
                s.post(text=P.error("step_failed", f"generating a frame failed ({type(e).__name__}: {e}); "
                                    "send 'reset' to start over"))

    def _reset(self, s: Session, msg: P.Reset) -> None:
        from ..runtime.simulator import Simulator

        name = msg.checkpoint or s.checkpoint
        seed = s.seed if msg.seed is None else msg.seed
        try:
            model = self.model(name)
            sim = Simulator(model, batch=1, **{**self.sim_overrides, "seed": seed})
            ctx = build_context(model, seed)
            actions, source, env = ctx.actions, ctx.source, ctx.env
            sim.reset(ctx.frames, ctx.actions, ctx.axes)
        except Exception as e:
            log.warning("reset failed: %s", e)
            s.post(text=P.error("reset_failed", f"could not start checkpoint {name!r}: {type(e).__name__}: {e}", "reset"))
            return
        spec, cfg = model.action_spec, sim.cfg
        policy = cfg.context_policy(brief=True)
        meta = {"checkpoint": name, "seed": seed, "context_source": source, "context_actions": actions.tolist(),
                "actions": [{"id": i, "name": n, "keys": list(spec.keys[i]) if spec.keys else []}
                            for i, n in enumerate(spec.names)],
                "axes": [a.to_dict() | {"rest": a.rest} | ({"mouse_gain": a.gain} if a.mouse else {}) for a in spec.axes],
                "fps": 1.0 / self.period if self.period else 0.0, "frame_size": model.frame_size,
                "sim": {"steps": cfg.steps, "window": cfg.window, "sink": cfg.sink, "memory": sim.memory.name,
                        "memory_slots": sim.memory.slots, "memory_pose": sim.memory.state().get("pose_from"), "shift": cfg.shift,
                        "context_noise": cfg.context_noise, "policy": policy},
                "truth_available": env is not None}
        self._free(s)  # the previous world (kept if this reset had failed)
        with self.lock:
            closed = s.closed
            if not closed:
                s.sim, s.env, s.checkpoint, s.seed, s.spec = sim, env, name, seed, spec
                s.next_due, s.frames_out = time.perf_counter(), 0
                s.held, s.latched, s.fresh, s.held_axes, s.latched_axes = 0, None, False, None, {}
        if closed:
            if env is not None:
                env.close()
            return
        with s.rec_lock:
            s.record.clear()
            s.meta = meta
        s.post(text=P.dumps("ready", **meta))

    def _env_step(self, s: Session, action: int, frame: np.ndarray | None,
                  axes: np.ndarray | None = None) -> tuple[np.ndarray | None, float | None]:
        """Step the truth env in lockstep; with ``frame`` (truth view on) return its frame and the PSNR."""
        obs, _, terminated, _, _ = s.env.step(s.spec.env_action(action, axes) if s.spec is not None else action)
        out = (np.asarray(obs, np.uint8), float(psnr(frame, obs))) if frame is not None else (None, None)
        if terminated:
            s.env.close()
            s.env = None
            s.post(text=P.dumps("truth_ended", step=s.frames_out, message="the real env's episode ended; "
                                "send 'reset' to restart the truth view"))
        return out

    def _step(self, s: Session, action: int, seq: int | None, t_ref: float, truth: bool,
              axes: tuple[float, ...] | None = None) -> None:
        t0 = time.perf_counter()
        spec = s.sim.model.action_spec
        ax = (np.asarray(axes, np.float32) if axes is not None else spec.rest_axes()) if spec.n_axes else None
        frame = s.sim.step(action, ax)  # (H, W, 3) uint8
        timings = dict(s.sim.state()["timings_ms"])
        s.frames_out += 1
        truth_frame, value = None, None
        if s.env is not None and truth:  # shown: step it before the frame goes out
            truth_frame, value = self._env_step(s, action, frame, ax)
        with s.rec_lock:
            s.record.append(frame, truth_frame, action, value)
        header = {"step": s.frames_out, "seq": seq, "action": action,
                  **({"axes": [round(float(v), 4) for v in ax]} if ax is not None else {}), "psnr": None if value is None else round(value, 2),
                  "latency_ms": round(s.latency_ms, 2), "wait_ms": round(max(0.0, t0 - t_ref) * 1e3, 2),
                  "timings_ms": {**{k: round(v, 3) for k, v in timings.items()},
                                 "encode_ms": round(s.encode_ms, 3), "send_ms": round(s.send_ms, 3)}}
        t1 = time.perf_counter()
        data = P.encode_frame(header, [frame] if truth_frame is None else [frame, truth_frame])
        s.encode_ms = (time.perf_counter() - t1) * 1e3  # reported with the next frame, like latency/send
        s.post(data=data, t_ref=t_ref)
        if s.env is not None and not truth:  # hidden: keep it in lockstep, off the action-to-frame path
            self._env_step(s, action, None, ax)
