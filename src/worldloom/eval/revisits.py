"""Revisits found in a dataset: come back to a view seen long before, in any env, with no pose.

The persistence suite scripts go-and-return trips in the arena, whose camera it knows. Any other
world (a ``gym:`` env, imported video) has no pose to script with, but its recorded episodes return
to views they saw before: a gridworld agent that turns around, a maze walked back. This suite finds
those returns in the true frames and asks the model to make them.

A probe is a pair of frames of one episode, ``t1 < t2``, where:

- frame ``t2`` is the view of frame ``t1`` again (PSNR >= ``match_db`` between the true frames);
- no frame in between shows it (``t1`` is the view's last sighting), so a model whose window is
  shorter than ``t2 - t1`` cannot have it in its context: the return is memory's to make;
- ``t2 - t1 >= gap``; each episode gives at most one probe per gap (its first such return).

The Simulator is reset on the ``context`` true frames ending at ``t1`` (the departure), then rolls out
the true actions up to ``t2``; the generated frame ``t2`` is scored against the truth. Key choices:

- **Memory decides.** Every memory named is run on the same probes of the same model: the window
  alone (no memory), and the pose-free ones (``similar``: retrieval by latent likeness). The
  departure frames are the only true frames the model sees; everything after is its own.
- **References beside it**, on the same frames: perfect memory (the true frame ``t1``: what copying
  the remembered view scores), copy-last (the true frame ``t2 - 1``: the view just before the
  return, known without memory) and the tokenizer reconstruction of ``t2`` (the ceiling).
- **Rollouts are grouped by length** so that probes of one length run in one batched Simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.format import Dataset
from ..runtime.simulator import WorldModel
from .metrics import PEAK, psnr, ssim
from .suite import SuiteResult, Table, generate, reconstruct

GAPS = (32, 64)  # frames between the last sighting and the return: 4x and 8x an 8-frame window
MATCH_DB = 35.0  # two true frames at least this alike (PSNR) show the same view


def last_sightings(frames: np.ndarray, match_db: float = MATCH_DB) -> np.ndarray:
    """Per frame of ``frames`` (T, H, W, 3) uint8, the latest earlier frame showing its view (PSNR >=
    ``match_db``), or -1: (T,) int, computed once per episode for every gap."""
    f = np.asarray(frames, np.float32).reshape(len(frames), -1)  # (T, D), converted once
    most = PEAK**2 / 10 ** (match_db / 10)  # PSNR >= match_db <=> MSE <= this
    last = np.full(len(f), -1, np.int64)
    for t in range(1, len(f)):
        hits = np.flatnonzero(((f[:t] - f[t]) ** 2).mean(1) <= most)
        if len(hits):
            last[t] = hits[-1]
    return last


def find_revisits(frames: np.ndarray, gap: int, context: int = 4, match_db: float = MATCH_DB,
                  last: np.ndarray | None = None) -> tuple[int, int] | None:
    """The first return of ``frames`` (T, H, W, 3) uint8 to a view last seen ``>= gap`` frames before.

    Returns ``(t1, t2)``: frame ``t2`` matches frame ``t1`` (PSNR >= ``match_db``), no frame strictly
    between them matches ``t2``, ``t2 - t1 >= gap`` and ``t1 >= context - 1`` (a full context ends at
    ``t1``); None when the episode has none. ``last``: the episode's :func:`last_sightings`, if known.
    """
    last = last_sightings(frames, match_db) if last is None else last
    t2 = np.flatnonzero((last >= context - 1) & (np.arange(len(last)) - last >= gap))
    return (int(last[t2[0]]), int(t2[0])) if len(t2) else None


def run_revisits(
    model: WorldModel,
    *,
    data: str | Path | None = None,
    gaps: Sequence[int] = GAPS,
    episodes: int = 50,
    context: int = 4,
    match_db: float = MATCH_DB,
    memories: Sequence[str] | None = None,
    batch: int = 10,
    seed: int = 0,
    sim_overrides: dict[str, Any] | None = None,
    progress: bool = False,
) -> SuiteResult:
    """Revisit probes found in ``data``'s first ``episodes`` episodes, one per episode and gap, scored
    per memory (module docstring). ``memories`` None = the one ``sim_overrides`` (or the checkpoint) names."""
    if data is None:
        raise ValueError("revisits: needs a dataset whose episodes return to earlier views (--data DIR)")
    gaps = tuple(int(g) for g in gaps)
    if not gaps or min(gaps) < 2 or len(set(gaps)) != len(gaps):
        raise ValueError(f"revisits: gaps must be distinct integers >= 2, got {gaps}")
    if context < 1 or episodes < 1 or batch < 1:
        raise ValueError(f"revisits: context, episodes and batch must be >= 1, got {context}, {episodes}, {batch}")
    ds = Dataset.open(data)
    if tuple(ds.frame_shape[:2]) != (model.frame_size, model.frame_size):
        raise ValueError(f"{data}: frames are {tuple(ds.frame_shape)}, the model makes {model.frame_size}x{model.frame_size}")
    model.action_spec.require_same(ds.action_spec, mine=f"checkpoint {model.path or 'model'}/config.json",
                                   theirs=f"dataset {data}/meta.json")
    base = {"seed": seed, **(sim_overrides or {})}
    mems: list[str | None] = [None] if not memories else list(dict.fromkeys(memories))
    rows, per_gap, notes = [], {}, []
    found: dict[int, list[tuple[int, int, int]]] = {g: [] for g in gaps}  # gap -> (episode, t1, t2)
    for i in range(min(episodes, len(ds))):
        frames = np.asarray(ds[i].frames)
        last = last_sightings(frames, match_db)
        for gap in gaps:
            hit = find_revisits(frames, gap, context, match_db, last=last)
            if hit is not None:
                found[gap].append((i, *hit))
    for gap in gaps:
        probes = found[gap]
        if not probes:
            notes.append(f"gap {gap}: no episode of {data} returns to a view after {gap} frames away")
            continue
        truth = np.stack([np.asarray(ds[i].frames[t2]) for i, _, t2 in probes])  # (P, H, W, 3)
        memory = np.stack([np.asarray(ds[i].frames[t1]) for i, t1, _ in probes])
        before = np.stack([np.asarray(ds[i].frames[t2 - 1]) for i, _, t2 in probes])
        refs = {"perfect memory": memory, "copy last": before, "tokenizer": reconstruct(model, truth)}
        scores = {k: (float(psnr(v, truth).mean()), float(ssim(v, truth).mean())) for k, v in refs.items()}
        away = [t2 - t1 for _, t1, t2 in probes]
        r: dict[str, Any] = {"gap": gap, "probes": len(probes), "frames_away_mean": float(np.mean(away)),
                             "references": {k: {"psnr": p, "ssim": s} for k, (p, s) in scores.items()}, "memories": {}}
        for mem in mems:
            over = base if mem is None else {**base, "memory": mem}
            gen, name = generate_returns(model, ds, probes, context, over, batch, progress)
            p, s = float(psnr(gen, truth).mean()), float(ssim(gen, truth).mean())
            r["memories"][name] = {"psnr": p, "ssim": s, "psnr_per_probe": psnr(gen, truth).tolist()}
            rows.append([name, gap, len(probes), f"{np.mean(away):.0f}", f"{p:.2f}", f"{s:.3f}",
                         *(f"{scores[k][0]:.2f}" for k in refs)])
        per_gap[str(gap)] = r
    if not per_gap:
        raise ValueError(f"revisits: no probe in {data} for any gap {gaps} (each needs an episode that returns to a "
                         f"view, PSNR >= {match_db} dB, after that many frames away without seeing it in between)")
    first = next(iter(per_gap.values()))
    metrics: dict[str, Any] = {f"psnr_gap{g}_{m}": v["psnr"] for g, r in per_gap.items() for m, v in r["memories"].items()}
    metrics.update({f"psnr_gap{g}_{k.replace(' ', '_')}": v["psnr"] for g, r in per_gap.items()
                    for k, v in r["references"].items()})
    metrics.update({"per_gap": per_gap, "memories": list(first["memories"]),
                    "settings": {"data": str(data), "episodes": episodes, "context": context, "match_db": match_db,
                                 "gaps": list(gaps), "seed": seed}})
    table = Table("Returns to a view last seen long before (the true frame at the return; PSNR dB, SSIM)",
                  ["memory", "gap", "probes", "frames away", "model PSNR", "model SSIM", *[f"{k} PSNR" for k in refs]], rows)
    return SuiteResult("revisits", metrics, [table], notes=notes)


def generate_returns(model: WorldModel, ds: Dataset, probes: list[tuple[int, int, int]], context: int,
                     overrides: dict[str, Any], batch: int, progress: bool) -> tuple[np.ndarray, str]:
    """The generated return frames (P, H, W, 3), each probe rolled out from its departure context to its
    return, probes of one length batched; and the name of the memory that made them."""
    out: list[np.ndarray | None] = [None] * len(probes)
    name = "window"
    by_len: dict[int, list[int]] = {}
    for j, (_, t1, t2) in enumerate(probes):
        by_len.setdefault(t2 - t1, []).append(j)
    for n, js in sorted(by_len.items()):
        eps = [ds[probes[j][0]] for j in js]
        starts = [probes[j][1] - context + 1 for j in js]
        ctx = np.stack([np.asarray(e.frames[s : s + context]) for e, s in zip(eps, starts)])
        ctx_a = np.stack([np.asarray(e.actions[s : s + context]) for e, s in zip(eps, starts)]).astype(np.int64)
        acts = np.stack([np.asarray(e.actions[s + context : s + context + n]) for e, s in zip(eps, starts)]).astype(np.int64)
        ax = ctx_ax = None
        if model.action_spec.n_axes:
            ctx_ax = np.stack([np.asarray(e.axes[s : s + context]) for e, s in zip(eps, starts)]).astype(np.float32)
            ax = np.stack([np.asarray(e.axes[s + context : s + context + n]) for e, s in zip(eps, starts)]).astype(np.float32)
        run = generate(model, ctx, ctx_a, acts, batch=batch, overrides=overrides, desc=f"revisits, {n} frames",
                       progress=progress, context_axes=ctx_ax, axes=ax)
        if run.sim_cfg is not None:
            name = run.sim_cfg.resolved_memory()[0]
        for k, j in enumerate(js):
            out[j] = run.frames[k, -1]
    return np.stack(out), name  # type: ignore[arg-type]


__all__ = ["GAPS", "MATCH_DB", "find_revisits", "generate_returns", "last_sightings", "run_revisits"]
