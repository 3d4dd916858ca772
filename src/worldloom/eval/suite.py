"""What every evaluation suite returns, so that the CLI, the JSON and the HTML report treat them alike.

A suite (physics, causality, persistence, fidelity, speed) is a function
``run_<name>(model, settings..., progress=...) -> SuiteResult``. It measures; it does not print or
write files. The report and the CLI only read ``SuiteResult``s.

Key choices:
- ``metrics`` is JSON-ready (floats, ints, strings, lists, dicts; NaN becomes None via ``clean``),
  because eval numbers are compared across commits as JSON.
- Tables and plots are plain data (no matplotlib objects), so a suite stays cheap to import and
  test; the report renders them.
- Videos are already composed panels (e.g. model | simulator | difference), uint8 (T, H, W, 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Plot:
    """A line plot: one line per series over the shared x values (None/NaN = gap)."""

    title: str
    xlabel: str
    ylabel: str
    x: list[float]
    series: dict[str, list[float | None]]
    logx: bool = False


@dataclass
class SuiteResult:
    name: str
    metrics: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    videos: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Metrics, tables, plots and notes as one JSON-ready dict (videos are files, not JSON)."""
        return clean({
            "metrics": self.metrics, "seconds": round(self.seconds, 1), "notes": self.notes,
            "tables": [t.__dict__ for t in self.tables], "plots": [p.__dict__ for p in self.plots],
        })


def clean(x: Any) -> Any:
    """Recursively turn numpy scalars/arrays into Python values and NaN/inf into None."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return f if math.isfinite(f) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def reconstruct(model: Any, frames: np.ndarray, chunk: int = 128) -> np.ndarray:
    """decode(encode(frames)) through the model's tokenizer, ``chunk`` frames at a time.

    uint8 (..., H, W, 3) -> the same shape: the ceiling of what frames drawn through this VAE can score.
    """
    import torch

    frames = np.asarray(frames)
    flat = frames.reshape(-1, *frames.shape[-3:])
    dev = next(model.vae.parameters()).device
    with torch.inference_mode():
        out = [model.vae.decode(model.vae.encode(torch.from_numpy(np.array(flat[i : i + chunk])).to(dev))).cpu().numpy()
               for i in range(0, len(flat), chunk)]
    return np.concatenate(out).reshape(frames.shape)


@dataclass
class Rollouts:
    """What :func:`generate` returns: the generated frames and how long generating them took."""

    frames: np.ndarray  # (E, N, H, W, 3) uint8
    seconds: float  # generation only (context encoding excluded), summed over batches
    steps: int  # Simulator steps taken (N per batch)
    sim_cfg: Any  # the SimConfig every batch ran with


def generate(model: Any, context: np.ndarray, context_actions: np.ndarray, actions: np.ndarray, *, batch: int = 16,
             overrides: dict[str, Any] | None = None, desc: str = "rollouts", progress: bool = False,
             context_axes: np.ndarray | None = None, axes: np.ndarray | None = None) -> Rollouts:
    """Roll out every episode from its true context: the one batched loop every suite uses.

    ``context`` (E, C, H, W, 3) uint8 and ``context_actions`` (E, C) reset a Simulator of up to
    ``batch`` worlds, which then takes ``actions`` (E, N) step by step. Each batch's Simulator is
    reset with the same seed, so two calls with the same context see the same noise (the rollout
    suite's true and swapped actions differ only by their actions). A model with continuous axes
    takes their raw values too: ``context_axes`` (E, C, A) and ``axes`` (E, N, A); None = at rest.
    """
    import sys
    import time

    from tqdm import tqdm

    from ..runtime.simulator import Simulator

    context, actions = np.asarray(context), np.asarray(actions)
    E, N = actions.shape
    if len(context) != E or np.asarray(context_actions).shape[0] != E:
        raise ValueError(f"generate: {len(context)} contexts, {np.asarray(context_actions).shape[0]} context actions "
                         f"and {E} action sequences; they must match")
    out = np.empty((E, N, *context.shape[2:]), np.uint8)
    seconds, steps, cfg = 0.0, 0, None
    bar = tqdm(total=E * N, desc=desc, unit="frame", disable=not progress or not sys.stderr.isatty())
    for i in range(0, E, batch):
        j = min(i + batch, E)
        sim = Simulator(model, batch=j - i, **(overrides or {}))
        cfg = sim.cfg
        sim.reset(context[i:j], np.asarray(context_actions)[i:j], None if context_axes is None else context_axes[i:j])
        t0 = time.perf_counter()  # generation only: encoding the context is a one-off per rollout
        for t in range(N):
            out[i:j, t] = sim.render(sim.step_latent(actions[i:j, t], None if axes is None else axes[i:j, t]))
            bar.update(j - i)
        seconds, steps = seconds + time.perf_counter() - t0, steps + N
    bar.close()
    return Rollouts(out, seconds, steps, cfg)


def side_by_side(model: np.ndarray, truth: np.ndarray, gap: int = 2) -> np.ndarray:
    """Panels model | truth | |difference| (amplified x4): uint8 (T, H, W, 3) x2 -> (T, H, 3W + 2 gap, 3)."""
    model, truth = np.asarray(model), np.asarray(truth)
    if model.shape != truth.shape:
        raise ValueError(f"side_by_side: model {model.shape} and truth {truth.shape} differ")
    diff = np.clip(np.abs(model.astype(np.int16) - truth.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
    pad = np.full((*model.shape[:2], gap, 3), 255, np.uint8)
    return np.concatenate([model, pad, truth, pad, diff], axis=2)
