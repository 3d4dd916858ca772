"""Physics suite (PhyWorld protocol): do generated balls move the way Box2D moves them?

For each scene (uniform, parabola, collision) x each range (id, ood) of :mod:`worldloom.envs.phys2d`,
fixed-seed episodes are simulated; the Simulator is reset on the first ``CONTEXT`` = 4 true frames
(action 0, the noop) and generates the remaining 28. Each ball is found by its colour centroid in
the generated and in the true frames, velocities are finite differences at 0.1 s, and the score is
the mean |v_gen - v_true| in units/s against the true state's finite differences.

Key choices:

- **Floor beside every number.** The same tracker on the *true* frames against the true state gives
  the error of the measurement itself at this resolution. A model cannot be judged below it.
  The tokenizer column scores decode(encode(true frames)): what the VAE alone costs, before any
  dynamics (the best a model that reasons in its latents can reach).
- **Tracker.** ``"binary"`` (default) is PhyWorld's: a pixel belongs to the red ball when
  R > 127, G < 127, B < 127 (blue alike); the centroid of that mask. ``"soft"`` weights pixels by
  colour excess clip((R - max(G, B) - 0.1) / 0.9, 0, 1): sub-pixel accurate on anti-aliased
  frames, so its floor is several times lower; the dead zone ignores faint colour haze.
- **Same pairs for model and floor.** Only generated frames are scored (pairs (4, 5) ... (30, 31)),
  so a decoder's constant offset cannot pose as motion; a pair counts only if the true ball is
  fully in view at both ends (PhyWorld drops frames where it is not).
- **Vanished balls are counted, not guessed.** A scored pair whose generated ball covers less than
  a quarter of its true area at either end is *lost*: reported as a share, kept out of the mean.
- **Velocity error is the 2-D norm** |v_gen - v_true| (PhyWorld reports x and y apart).
- **Collisions** (masses pi r^2 from the state, density 1): momentum error |sum m (v_gen - v_true)|
  and kinetic-energy error |KE_gen - KE_true| on pairs that do not straddle the contact (their
  difference quotient mixes before and after), as % of the mean sum m|v| and KE of those pairs;
  plus the velocity error after the contact (predicting the outcome is the hard part).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from ..hardware import setup_cpu
from ..runtime.simulator import WorldModel
from .suite import Plot, SuiteResult, Table, generate, reconstruct, side_by_side

CONTEXT = 4
TRACKERS = ("binary", "soft")
MAX_BATCH = 16  # worlds per Simulator batch
MIN_AREA_FRAC = 0.25  # a ball with less than this share of its true area has vanished
GROUP_STRIDE = 10_000  # episode seeds of group g: seed + g * GROUP_STRIDE + i


def ball_weights(frames: np.ndarray, tracker: str = "binary") -> np.ndarray:
    """Per-pixel membership of the red and the blue ball: uint8 (..., H, W, 3) -> float32 (..., 2, H, W)."""
    if tracker not in TRACKERS:
        raise ValueError(f"tracker must be one of {list(TRACKERS)}, got {tracker!r}")
    f = np.asarray(frames)
    if f.dtype != np.uint8 or f.ndim < 3 or f.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (..., H, W, 3), got {f.dtype} {f.shape}")
    R, G, B = (f[..., c] for c in range(3))
    if tracker == "binary":  # PhyWorld's colour thresholds
        red = (R > 127) & (G < 127) & (B < 127)
        blue = (R < 127) & (G < 127) & (B > 127)
        return np.stack([red, blue], axis=-3).astype(np.float32)
    x = f.astype(np.float32) / 255.0
    R, G, B = x[..., 0], x[..., 1], x[..., 2]
    excess = np.stack([R - np.maximum(G, B), B - np.maximum(R, G)], axis=-3)  # (..., 2, H, W)
    return np.clip((excess - 0.1) / 0.9, 0.0, 1.0)


def track_balls(frames: np.ndarray, tracker: str = "binary") -> tuple[np.ndarray, np.ndarray]:
    """Colour centroids: frames (..., H, W, 3) -> (centres px (..., 2, 2) as (x, y), y down, pixel
    (r, c) centred at (c + 0.5, r + 0.5); areas px (..., 2)). A ball with no pixels gets NaN."""
    w = ball_weights(frames, tracker)  # (..., 2, H, W)
    H, W = w.shape[-2:]
    area = w.sum(axis=(-2, -1))  # (..., 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (w.sum(axis=-2) * (np.arange(W) + 0.5)).sum(axis=-1) / area
        cy = (w.sum(axis=-1) * (np.arange(H) + 0.5)).sum(axis=-1) / area
    return np.stack([cx, cy], axis=-1), area


def simulate(scenario: str, distribution: str, episodes: int, seed: int,
             frame_size: int = 64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """True episodes: frames uint8 (E, T, S, S, 3) and state arrays (E, T, ...); episode i uses ``seed + i``."""
    from ..envs import make

    env = make("phys2d", frame_size=frame_size, scenario=scenario, distribution=distribution)
    frames, states = [], []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        fr, st, done = [obs], [info["state"]], False
        while not done:
            obs, _, _, done, info = env.step(0)
            fr.append(obs)
            st.append(info["state"])
        frames.append(np.stack(fr))
        states.append({k: np.stack([s[k] for s in st]) for k in st[0]})
    return np.stack(frames), {k: np.stack([s[k] for s in states]) for k in states[0]}


def score(frames: np.ndarray, state: dict[str, np.ndarray], *, dt: float, world_size: float,
          tracker: str = "binary") -> dict[str, np.ndarray]:
    """Per-pair errors of the balls tracked in ``frames`` (E, N, H, W, 3), which show the true
    frames ``-N:`` of ``state`` (E, T, ...): velocity error (E, N-1, 2) (NaN where not scored),
    masks ``valid`` (true ball in view at both ends) and ``lost``, and collision terms (E, N-1)."""
    N = frames.shape[1]
    st = {k: v[:, -N:] for k, v in state.items()}
    k = float(st["px_per_unit"].flat[0])
    c, area = track_balls(frames, tracker)  # (E, N, 2, 2) px, (E, N, 2)
    pos = np.stack([c[..., 0] / k, world_size - c[..., 1] / k], axis=-1)  # units, y up
    P = st["ball_pos"].astype(np.float64)  # (E, N, 2, 2) units, y up
    r = st["ball_radius"][..., None].astype(np.float64)  # (E, N, 2, 1)
    inside = ((P - r >= 0) & (P + r <= world_size)).all(-1) & (st["ball_present"] > 0)  # (E, N, 2)
    found = area >= np.maximum(MIN_AREA_FRAC * math.pi * st["ball_radius_px"] ** 2, 1.0)
    valid = inside[:, :-1] & inside[:, 1:]  # (E, J, 2)
    tracked = found[:, :-1] & found[:, 1:]
    v_true = np.diff(P, axis=1) / dt  # (E, J, 2, 2) mean velocity over each step
    v_gen = np.diff(pos, axis=1) / dt
    err = np.where(valid & tracked, np.linalg.norm(v_gen - v_true, axis=-1), np.nan)  # (E, J, 2)
    vs = st["ball_vel"]
    straddle = np.abs(np.diff(vs, axis=1)).max(axis=(-1, -2)) > 1e-3  # (E, J): velocities jump (contact)
    after = np.cumsum(straddle, axis=1) - straddle > 0  # (E, J): pairs after the first contact
    m = st["ball_mass"][:, :-1]  # (E, J, 2)
    both = valid.all(-1) & tracked.all(-1) & ~straddle & (st["ball_present"][:, 0] > 0).all(-1)[:, None]
    dp = np.linalg.norm((m[..., None] * (v_gen - v_true)).sum(axis=2), axis=-1)  # (E, J)
    ke_true = 0.5 * (m * (v_true**2).sum(-1)).sum(-1)
    ke_gen = 0.5 * (m * np.nan_to_num(v_gen**2).sum(-1)).sum(-1)
    p_scale = (m * np.linalg.norm(v_true, axis=-1)).sum(-1)
    return {"err": err, "valid": valid, "lost": valid & ~tracked, "after": after, "both": both,
            "dp": np.where(both, dp, np.nan), "de": np.where(both, np.abs(ke_gen - ke_true), np.nan),
            "p_scale": np.where(both, p_scale, np.nan), "ke": np.where(both, ke_true, np.nan)}


def _mean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan


def summarize(s: dict[str, np.ndarray], collision: bool) -> dict[str, float]:
    """Scalar metrics of one group from :func:`score`'s arrays."""
    n = int(s["valid"].sum())
    out = {"vel_err": _mean(s["err"]), "lost_frac": float(s["lost"].sum() / n) if n else math.nan, "pairs": n}
    if collision:
        out["vel_err_after"] = _mean(np.where(s["after"][..., None], s["err"], np.nan))
        out["momentum_err"], out["energy_err"] = _mean(s["dp"]), _mean(s["de"])
        out["momentum_err_pct"] = 100 * out["momentum_err"] / _mean(s["p_scale"])
        out["energy_err_pct"] = 100 * out["energy_err"] / _mean(s["ke"])
    return out


def _generate(model: WorldModel, context: np.ndarray, n: int, overrides: dict[str, Any]) -> np.ndarray:
    """Roll out n frames after context (E, C, H, W, 3) under the scenes' only action: (E, n, H, W, 3)."""
    E = len(context)
    return generate(model, context, np.zeros(context.shape[:2], np.int64), np.zeros((E, n), np.int64),
                    batch=MAX_BATCH, overrides=overrides).frames


def _r(x: float, nd: int = 3) -> float | None:
    return round(x, nd) if math.isfinite(x) else None


def run_physics(model: WorldModel | dict[str, WorldModel] | None, *, episodes: int = 16, seed: int = 1_000_000,
                sim_overrides: dict[str, Any] | None = None, progress: bool = False,
                tracker: str = "binary") -> SuiteResult:
    """Score a phys2d world model on every scene x {id, ood}; ``model=None`` measures the floor only.

    Args:
        model: a loaded world model whose frames are phys2d frames (action 0 = noop), a dict of one
            such model per scene (PhyWorld's protocol trains one model per scene), or None.
        episodes: episodes per scene and range (6 groups).
        seed: episode seeds of group g are ``seed + g * 10000 + i`` (far from training seeds).
        sim_overrides: SimConfig fields for the Simulator (e.g. ``{"steps": 2}``).
        progress: a bar over the 6 groups (only on a terminal).
        tracker: ``"binary"`` (PhyWorld's colour thresholds) or ``"soft"`` (colour-excess weights).
    """
    from ..envs.phys2d import DISTRIBUTIONS, SCENARIOS, Phys2DConfig

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if tracker not in TRACKERS:
        raise ValueError(f"tracker must be one of {list(TRACKERS)}, got {tracker!r}")
    t0 = time.time()
    per_scene = model if isinstance(model, dict) else {sc: model for sc in SCENARIOS}
    missing = [sc for sc in SCENARIOS if sc not in per_scene]
    if missing:
        raise ValueError(f"physics: no model for scene(s) {missing}")
    first = per_scene[SCENARIOS[0]]
    size = first.frame_size if first is not None else 64
    if any((m.frame_size if m is not None else 64) != size for m in per_scene.values()):
        raise ValueError("physics: the per-scene models must share one frame size")
    cfg = Phys2DConfig(frame_size=size)
    notes = [(f"tracker '{tracker}'; {episodes} episodes per group; context {CONTEXT} true frames, "
              f"{cfg.frames - CONTEXT} generated; velocity error in units/s (world 10 units, 0.1 s per frame)")]
    if isinstance(model, dict):
        notes.append("one model per scene: " + ", ".join(f"{sc} = {m.path.name if m.path else 'in-memory'}"
                                                         for sc, m in per_scene.items()))
    for m in {id(m): m for m in per_scene.values() if m is not None}.values():
        if m.config.get("env") not in (None, "phys2d"):
            notes.append(f"model was trained on env {m.config.get('env')!r}, not phys2d")
    metrics: dict[str, Any] = {"tracker": tracker, "episodes": episodes, "groups": {}}
    rows, coll_rows, videos = [], [], {}
    curves: dict[str, dict[str, list[float | None]]] = {d: {} for d in DISTRIBUTIONS}
    groups = [(s, d) for s in SCENARIOS for d in DISTRIBUTIONS]
    for g, (sc, dist) in enumerate(tqdm(groups, desc="physics", disable=not progress or not sys.stderr.isatty())):
        frames, state = simulate(sc, dist, episodes, seed + g * GROUP_STRIDE, size)  # (E, T, S, S, 3)
        truth = frames[:, CONTEXT:]
        kw = {"dt": cfg.dt, "world_size": cfg.world_size, "tracker": tracker}
        fs = score(truth, state, **kw)
        res: dict[str, Any] = {"floor": summarize(fs, sc == "collision")}
        series = {"floor": fs}
        m = per_scene[sc]
        if m is not None:
            gen = _generate(m, frames[:, :CONTEXT], truth.shape[1], dict(sim_overrides or {}))
            ms = score(gen, state, **kw)
            res["model"] = summarize(ms, sc == "collision")
            res["tokenizer"] = summarize(score(reconstruct(m, truth), state, **kw), sc == "collision")
            series["model"] = ms
            videos[f"{sc}-{dist}"] = side_by_side(np.concatenate([frames[0, :CONTEXT], gen[0]]), frames[0])
        metrics["groups"][f"{sc}_{dist}"] = res
        for who, s in series.items():
            curves[dist][f"{sc} {who}"] = [_r(_mean(s["err"][:, j])) for j in range(s["err"].shape[1])]
        mm, tk, fl = res.get("model", {}), res.get("tokenizer", {}), res["floor"]
        ratio = mm.get("vel_err", math.nan) / fl["vel_err"] if fl["vel_err"] else math.nan
        rows.append([sc, dist, _r(mm.get("vel_err", math.nan)), _r(tk.get("vel_err", math.nan)), _r(fl["vel_err"]),
                     _r(ratio, 2), _r(100 * mm.get("lost_frac", math.nan), 1), fl["pairs"]])
        if sc == "collision":
            coll_rows.append([dist] + [_r(x.get(k, math.nan), nd) for k, nd in
                                       (("vel_err_after", 3), ("momentum_err_pct", 1), ("energy_err_pct", 1))
                                       for x in (mm, fl)])
    g = metrics["groups"]
    metrics["floor_vel_err"] = {k: v["floor"]["vel_err"] for k, v in g.items()}
    if first is not None:
        metrics["vel_err"] = {k: v["model"]["vel_err"] for k, v in g.items()}
        metrics["id_ratio_to_floor"] = {s: g[f"{s}_id"]["model"]["vel_err"] / g[f"{s}_id"]["floor"]["vel_err"]
                                        for s in ("uniform", "parabola")}
    tables = [Table("Velocity error |v_gen - v_true| (units/s), model vs ground-truth floor",
                    ["scene", "range", "model", "tokenizer", "floor", "model/floor", "lost %", "pairs"], rows),
              Table("Collisions: after-contact velocity error (units/s), momentum and energy error (%)",
                    ["range", "vel after: model", "floor", "momentum %: model", "floor", "energy %: model", "floor"],
                    coll_rows)]
    n_pairs = cfg.frames - CONTEXT - 1
    plots = [Plot(f"Velocity error per generated step ({d})", "step after context", "units/s",
                  list(range(1, n_pairs + 1)), curves[d]) for d in DISTRIBUTIONS]
    return SuiteResult("physics", metrics, tables, plots, videos, time.time() - t0, notes)


def format_tables(result: SuiteResult) -> str:
    """The result's tables as aligned text (for the command line)."""
    out = []
    for t in result.tables:
        cells = [[str(c) for c in t.columns]] + [["-" if v is None else str(v) for v in row] for row in t.rows]
        w = [max(len(r[i]) for r in cells) for i in range(len(t.columns))]
        out += [t.title] + ["  ".join(c.rjust(w[i]) for i, c in enumerate(r)) for r in cells] + [""]
    return "\n".join(out + result.notes)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Physics suite: velocity errors vs the ground-truth floor.")
    p.add_argument("--checkpoint", default=None, help="world model name or dir, '{scene}' in it for one per scene "
                                                      "(omit: measure the floor only)")
    p.add_argument("--episodes", type=int, default=16, help="episodes per scene and range (default: 16)")
    p.add_argument("--seed", type=int, default=1_000_000, help="first episode seed (default: 1000000)")
    p.add_argument("--tracker", default="binary", choices=TRACKERS, help="ball tracker (default: binary)")
    args = p.parse_args(argv)
    model = None
    if args.checkpoint:
        from .suites import physics_models

        setup_cpu()
        model = physics_models(args.checkpoint)
    res = run_physics(model, episodes=args.episodes, seed=args.seed, tracker=args.tracker, progress=True)
    print(format_tables(res))
    print(f"({res.seconds:.1f} s)")


if __name__ == "__main__":
    main()
