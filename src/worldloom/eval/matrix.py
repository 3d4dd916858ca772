"""The speed matrix: one row per sampler steps x precision x compile, with speed and kept quality.

``worldloom bench --matrix`` prints it. Every row loads the checkpoint with the row's speed-ups
(:func:`~worldloom.runtime.speed.accelerate` via ``load``), then measures, through the same Simulator
as play and eval:

- speed: :func:`~worldloom.eval.speed.run_speed` (batch-1 stream: FPS, p50/p95 latency);
- quality: :func:`~worldloom.eval.fidelity.run_fidelity` PSNR at horizons 32 and 512 (fixed seeds) with, in
  worlds that report objects, ball and landmark permanence over h1-32 and the share of frames with a false object, and in
  worlds with walls (a ``structure_color`` prior) their IoU with the truth's over h1-32 (eval/structure.py); and
  :func:`~worldloom.eval.causality.run_causality` action-following accuracy (fixed contexts),

and reports each against the **base** row: ``base_steps`` (default: the most in the grid), fp32, eager, of
``base_checkpoint`` (default: the same checkpoint; for a distilled student, its many-step teacher). All rows
use the same episodes and the same sampling seed, so differences are the speed-ups' doing. Timings
in one matrix share one machine state: compare ratios within a run, not across runs.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from .suite import SuiteResult, Table

# Object scores kept per row (worlds that report objects; eval/objects.py) and the walls' IoU (worlds with a
# structure colour; eval/structure.py), from the fidelity episodes; {u}: the objects' span, h1-32 or the rollout.
QUALITY_COLUMNS = ("ball_permanence_h1_{u}", "landmark_permanence_h1_{u}", "ball_contrast", "landmark_contrast",
                   "false_objects", "walls_iou_h1_{u}")


def quality_columns(horizons: tuple[int, ...]) -> tuple[str, ...]:
    """The object and wall keys a row keeps for fidelity rollouts to ``max(horizons)``."""
    from .fidelity import OBJECT_HORIZON

    return tuple(k.format(u=min(max(horizons), OBJECT_HORIZON)) for k in QUALITY_COLUMNS)


def _row(checkpoint: str | Path, steps: int, precision: str, compile: bool, frames: int, quality_episodes: int,
         causality_episodes: int, horizons: tuple[int, ...], device: str = "cpu") -> dict[str, Any]:
    from ..runtime.loading import load
    from .causality import run_causality
    from .fidelity import run_fidelity
    from .speed import run_speed

    model = load(checkpoint, device=device, precision=precision, compile=compile)
    sim = {"steps": steps}
    if compile:  # the first calls compile; keep that out of the timed stream
        run_speed(model, frames=8, sim_overrides=sim)
    sp = run_speed(model, frames=frames, sim_overrides=sim).metrics
    row: dict[str, Any] = {"steps": steps, "device": device, "precision": precision, "compile": compile, "fps": sp["fps"],
                           "latency_p50_ms": sp["latency_p50_ms"], "latency_p95_ms": sp["latency_p95_ms"]}
    if quality_episodes:
        fid = run_fidelity(model, episodes=quality_episodes, horizons=horizons, sim_overrides=sim, videos=0).metrics
        row.update({f"psnr_h{h}": fid["psnr_at"]["model"].get(str(h)) for h in horizons})
        scores = {**(fid.get("objects") or {}), **(fid.get("structure") or {})}
        row.update({k: scores[k] for k in quality_columns(horizons) if k in scores})
    if causality_episodes:
        row["action_following"] = run_causality(model, episodes=causality_episodes, sim_overrides=sim).metrics["accuracy"]
    return row


def run_speed_matrix(checkpoint: str | Path, *, steps_list: tuple[int, ...] = (1, 2, 16),
                     precisions: tuple[str, ...] = ("fp32", "bf16", "int8"), compiles: tuple[bool, ...] = (False,),
                     frames: int = 300, quality_episodes: int = 2, causality_episodes: int = 4,
                     horizons: tuple[int, ...] = (32, 512), base_steps: int | None = None,
                     base_checkpoint: str | Path | None = None, progress: bool = False,
                     device: str = "cpu") -> SuiteResult:
    """Measure every combination against the base row (``base_steps``, default the grid's most, fp32, eager,
    of ``base_checkpoint``, default ``checkpoint``), on ``device`` (cpu, cuda, auto...). int8 is a CPU
    kernel: on any other device its rows are left out."""
    from ..hardware import pick_device
    from ..runtime.speed import PRECISIONS

    device = str(pick_device(device))
    if not device.startswith("cpu"):
        precisions = tuple(p for p in precisions if p != "int8")

    if not steps_list or min(steps_list) < 1:
        raise ValueError(f"steps_list must hold integers >= 1, got {steps_list}")
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        raise ValueError(f"precisions must be among {PRECISIONS}, got {precisions}")
    t0 = time.time()
    if base_steps is not None and base_steps < 1:
        raise ValueError(f"base_steps must be >= 1, got {base_steps}")
    base_key = (base_steps or max(steps_list), "fp32", False)
    other = base_checkpoint is not None and str(base_checkpoint) != str(checkpoint)
    grid = list(itertools.product(sorted(set(steps_list)), precisions, compiles))
    combos = [(base_checkpoint if other else checkpoint, *base_key)]
    combos += [(checkpoint, *c) for c in grid if other or c != base_key]
    rows = []
    for i, (ck, s, p, c) in enumerate(combos):
        if progress:
            print(f"matrix: {i + 1}/{len(combos)} {ck} steps={s} precision={p} compile={c}", flush=True)
        rows.append({"checkpoint": str(ck), **_row(ck, s, p, c, frames, quality_episodes, causality_episodes, tuple(horizons),
                                                    device)})
    base = rows[0]
    for r in rows:
        r["speedup"] = r["fps"] / base["fps"] if base["fps"] else None
        for h in horizons:
            k = f"psnr_h{h}"
            if r.get(k) is not None and base.get(k) is not None:
                r[f"d_psnr_h{h}"] = r[k] - base[k]
        if r.get("action_following") is not None and base.get("action_following") is not None:
            r["d_action_following_pts"] = 100 * (r["action_following"] - base["action_following"])

    def f(v: Any, nd: int = 2, sign: bool = False) -> str:
        return "n/a" if v is None else f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"

    objs = [k for k in quality_columns(tuple(horizons)) if any(r.get(k) is not None for r in rows)]
    cols = ["checkpoint", "steps", "precision", "compile", "FPS", "x base", "p95 ms"] + [f"PSNR h{h} (Δ)" for h in horizons] + \
        ["follow % (Δ pts)"] + [f"{k.replace('_', ' ')}" + ("" if k.endswith("contrast") else " %") for k in objs]
    table_rows = []
    for r in rows:
        q = [f"{f(r.get(f'psnr_h{h}'))} ({'base' if r is base else f(r.get(f'd_psnr_h{h}'), 2, True)})" for h in horizons]
        af = r.get("action_following")
        afs = "n/a" if af is None else f"{100 * af:.1f} ({'base' if r is base else f(r.get('d_action_following_pts'), 1, True)})"
        table_rows.append([Path(r["checkpoint"]).name, r["steps"], r["precision"], "on" if r["compile"] else "off", f(r["fps"], 1),
                           f(r["speedup"], 2), f(r["latency_p95_ms"], 1)] + q + [afs] +
                          ["n/a" if r.get(k) is None else f"{r[k]:.2f}" if k.endswith("contrast") else f"{100 * r[k]:.1f}"
                           for k in objs])
    notes = [f"base row: {Path(rows[0]['checkpoint']).name}, {base_key[0]} steps, fp32, eager; quality on {quality_episodes} fidelity episodes "
             f"(PSNR at h={', '.join(map(str, horizons))}) and {causality_episodes} causality contexts; speed over "
             f"{frames} frames, batch 1."]
    base_info = {"checkpoint": rows[0]["checkpoint"], "steps": base_key[0], "precision": "fp32", "compile": False}
    return SuiteResult("speed_matrix", {"rows": rows, "base": base_info},
                       [Table("Speed matrix", cols, table_rows)], seconds=time.time() - t0, notes=notes)


__all__ = ["run_speed_matrix"]
