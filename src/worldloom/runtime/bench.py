"""The rollout bench: one Simulator (batch 1) streams N frames; time and memory are measured per frame.

``worldloom bench`` formats what :func:`rollout_bench` returns; nothing here prints.

Design choices:

- **Real context.** The 4 context frames come from the checkpoint's own env (a reset plus three
  scripted steps) when that env can be built here, so the cache starts from in-distribution
  latents; otherwise (imported video, unknown env) from black frames. ``context_source`` says which.
- **Scripted actions.** Frame ``k`` takes action ``(k // HOLD) % n_actions``: every action, no-op
  included, held for ``HOLD`` frames in turn. Deterministic, so two runs do the same work.
- **Every frame measured.** Wall time of ``Simulator.step`` (denoise + cache write + decode, i.e.
  what a player waits for) and the resident set size right after it, read from
  ``/proc/self/statm`` (``resource``'s peak RSS where /proc is missing). Stage times are the means
  of ``sim.state()["timings_ms"]``.
- **Flatness.** Once the rolling window is full, neither time nor memory per frame may grow:
  ``flatness_ratio`` = median time of the last span of frames / median time of the span from frame 100
  (:func:`flatness`: a tenth of the run, at least 100 frames, each span at most half of what follows frame 100;
  needs >= 200 frames; ~1.0 is flat), ``rss_growth_pct`` = RSS growth from the frame where the window filled
  up to the end. Medians over a tenth of the run, because on a shared 2-core machine the mean of two 100-frame
  stretches swung from 0.91 to 1.45 between two identical 10,000-frame runs (docs/BENCHMARKS.md, "Memory",
  twenty-sixth session): another process's burst, not the Simulator. Metrics a short run cannot measure are
  ``None``.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from typing import Any

import numpy as np

from .context import CONTEXT  # context frames committed before the timed rollout
HOLD = 8  # frames each scripted action is held

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int | None = None) -> int:
    """Current resident set size of this process, or of process ``pid`` (Linux /proc). Without /proc:
    this process's peak RSS, and 0 for another process."""
    try:
        with open(f"/proc/{'self' if pid is None else pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        if pid is not None and pid != os.getpid():
            return 0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def n_params(module: Any) -> int:
    """Parameters of a module, counting int8-quantised Linears (whose packed weights are not Parameters)."""
    n = sum(p.numel() for p in module.parameters())
    for m in module.modules():
        # a torch.ao dynamic quantised Linear (its weight() unpacks; its _packed_params child has none)
        if hasattr(m, "_packed_params") and callable(getattr(m, "weight", None)):
            weight, bias = m._packed_params._weight_bias()
            n += weight.numel() + (bias.numel() if bias is not None else 0)
    return n


def scripted_actions(n_frames: int, n_actions: int, hold: int = HOLD) -> np.ndarray:
    """The bench's action sequence (n_frames,): each action id held ``hold`` frames, cycling."""
    return (np.arange(n_frames) // hold) % n_actions


def context_clip(model: Any, seed: int, n: int = CONTEXT) -> Any:
    """``n`` context frames with a little motion in their actions: a
    :class:`~worldloom.runtime.context.Context` (frames, actions, axes, source)."""
    from .context import start_context

    actions = np.zeros(n, dtype=np.int64)
    actions[1:] = np.arange(1, n) % model.action_spec.n  # a little motion
    return start_context(model, seed, actions)


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q))


def flatness(ms: np.ndarray, skip: int = 100) -> float | None:
    """Per-frame time growth over a run: median of its last span / median of the span from frame ``skip``.

    ``ms`` (N,) per-frame times. The span is a tenth of the run, at least 100 frames, and at most half of the
    frames after ``skip`` (so the two never overlap); None when that leaves fewer than 50 frames a span (N < 200).
    """
    n = len(ms)
    span = min(max(100, n // 10), (n - skip) // 2)
    if span < 50:
        return None
    return round(float(np.median(ms[-span:]) / np.median(ms[skip : skip + span])), 3)


def rollout_bench(model: Any, frames: int = 2000, sim_overrides: dict[str, Any] | None = None,
                  seed: int = 0) -> dict[str, Any]:
    """Roll out ``frames`` frames with one batch-1 Simulator; return the measurements.

    Args:
        model: a loaded :class:`~worldloom.runtime.simulator.WorldModel`.
        frames: frames to generate after the context.
        sim_overrides: SimConfig fields to change (steps, window, sink, context_noise, shift).
        seed: seed of the context env reset and of the sampling noise (unless overridden).

    Returns:
        A JSON-ready dict: ``fps``, ``latency_ms`` (mean/p50/p95/p99/max), ``stages_ms``,
        ``rss_mb`` (start/frame_100/frame_200/full_window/end), ``rss_growth_pct``,
        ``flatness_ratio``, ``full_window_frame`` and what was run (``sim``, ``model``, ``system``).
    """
    import torch

    from .simulator import Simulator

    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    overrides = {"seed": seed, **(sim_overrides or {})}
    sim = Simulator(model, batch=1, **overrides)
    ctx = context_clip(model, seed)
    source = ctx.source
    actions = scripted_actions(frames, model.action_spec.n)

    rss0 = rss_bytes()
    sim.reset(ctx.frames, ctx.actions, ctx.axes)
    times = np.empty(frames)
    rss = np.empty(frames, dtype=np.int64)
    stages: dict[str, list[float]] = {}
    full_at: int | None = None
    t_start = time.perf_counter()
    for k in range(frames):
        t0 = time.perf_counter()
        sim.step(int(actions[k]))
        times[k] = time.perf_counter() - t0
        rss[k] = rss_bytes()
        st = sim.state()
        for name, ms in st["timings_ms"].items():
            stages.setdefault(name, []).append(ms)
        if full_at is None and min(sim.cache.n_frames, sim.cfg.window) >= sim.cfg.window:  # the window has filled
            full_at = k
    total = time.perf_counter() - t_start

    ms = times * 1e3
    mb = rss / 2**20

    def rss_at(k: int | None) -> float | None:
        return round(float(mb[k]), 1) if k is not None and k < frames else None

    flat = flatness(ms)
    growth = None
    if full_at is not None and full_at < frames - 1:
        growth = round(float((rss[-1] - rss[full_at]) / rss[full_at] * 100), 2)
    cfg = sim.cfg
    dit = model.dit
    return {
        "frames": frames,
        "fps": round(frames / total, 2),
        "latency_ms": {"mean": round(float(ms.mean()), 3), "p50": round(_pct(ms, 50), 3), "p95": round(_pct(ms, 95), 3),
                       "p99": round(_pct(ms, 99), 3), "max": round(float(ms.max()), 3)},
        "stages_ms": {k: round(float(np.mean(v)), 3) for k, v in stages.items()},
        "rss_mb": {"start": round(rss0 / 2**20, 1), "frame_100": rss_at(100), "frame_200": rss_at(200),
                   "full_window": rss_at(full_at), "end": rss_at(frames - 1)},
        "rss_growth_pct": growth,
        "flatness_ratio": flat,
        "full_window_frame": full_at,
        "context_source": source,
        "sim": {"steps": cfg.steps, "shift": cfg.shift, "window": cfg.window, "sink": cfg.sink, "memory": cfg.resolved_memory()[0],
                "context_noise": cfg.context_noise, "seed": cfg.seed, "cache_bytes": sim.cache.nbytes()},
        "model": {"path": str(model.path) if model.path else None, "frame_size": model.frame_size,
                  "tokens_per_frame": dit.cfg.n_tok, "dit_params": n_params(dit),
                  "vae_params": sum(p.numel() for p in model.vae.parameters())},
        "system": {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(sim.device),
                   "cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
    }


__all__ = ["rollout_bench", "rss_bytes", "scripted_actions", "context_clip", "CONTEXT", "HOLD"]
