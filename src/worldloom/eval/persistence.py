"""Persistence: leave a place for k frames, come back along the same path reversed, and compare.

A probe puts the agent at rest at a start place (4 px camera cell centre, near a corner of the arena),
shows the model ``context`` still frames there (the departure), then drives ``k`` frames away along
a scripted path and ``k`` frames back along the same path reversed, and holds still for ``revisit``
frames. The revisit frames are scored against the simulator's (PSNR, SSIM) for each k; with a
rolling-window context policy the departure leaves the model's attention span after ``window - 1``
frames, so most ks test what the policy *cannot* see, by design. Later memory work raises these numbers.

Key choices:

- **A path the truth really retraces.** The agent has inertia and the camera snaps to 4 px, so
  reversing the actions step by step would not come back. The path is made of segments "hold a
  direction 4 frames, then noop 4" (16 px; the agent stops at each segment end: exactly with the
  arena's default 'accel' control, to ~0.2 px with the first worlds' 'smooth' one), so the reversed
  segments mirror the forward ones. The start is a camera cell centre (+-2 px of slack before the
  camera snaps elsewhere).
- **Away, then wander away.** Segments first move from the corner towards the middle of the world
  until the departure view has left the frame (Chebyshev distance >= view + 16 px), then random-walk
  (60 % keep direction) on the far side, never entering the walls' margin. Small ks cannot get far
  (k = 8 moves 16 px, k = 32 about 50 px): they test short-term consistency, not memory.
- **Truth checked, not assumed.** Balls can knock the agent off its path. A probe counts only if
  the simulator's camera on every revisit frame equals the departure camera; otherwise the next seed
  is tried (fixed order from ``seed``, at most ``tries`` per probe). The acceptance rate and the
  agent's position error are reported per k.
- **The place, not the balls.** The balls keep moving, so even the true departure frame differs
  from the true revisit (~20-50 dB, depending on where the balls went). Besides full-frame PSNR and
  SSIM, a *static* PSNR leaves out the agent sprite and boxes around every ball (at the revisit, the
  departure and the turning point): what memory of the place can be scored on.
- **References beside the model**: perfect memory (the true departure frame, static PSNR), no memory
  (the true frame at the turning point, a place that is not it) and the tokenizer reconstruction of
  the true revisit frames (the pixel ceiling through this VAE).
- **What memory must not bring back**: the share of revisit frames with a false object (an object-coloured
  blob where the truth has none; eval/haze.false_objects), since a memory that copies the departure frame
  copies its balls where they no longer are. The true departure frame itself, as a perfect memory of the
  place, scores it too. Split by the colour's kind, it tells balls copied back from landmarks drawn where
  none is (a misplaced memory frame): on the shipped ``arena`` at 512 frames away, 1.0 % and 7.3 % of frames.
- **Batched**: all probes of one k roll out in one Simulator (same length); latents are decoded
  in chunks at the end, so the ~1,024 frames of k = 512 cost denoising and cache writes only.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ..envs.arena import WALL_PX
from ..envs.registry import agent_half_px
from ..runtime.simulator import WorldModel
from .causality import make_truth_env
from .haze import false_objects
from .objects import objects_from_state
from .metrics import MIN_MSE, PEAK, psnr, ssim
from .motion import box_mask, central_mask
from .suite import Plot, SuiteResult, Table, generate, reconstruct, side_by_side

KS = (16, 64, 256)  # 32, 128 and 512 frames away: 4x, 16x and 64x an 8-frame window
SEED = 310_000
HOLD, PAUSE = 4, 4  # frames a segment holds its direction, then noops
KEEP_DIR = 0.6  # chance a wandering segment keeps the previous direction
_DIRS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
_OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}


def plan_path(k: int, start: np.ndarray, lo: float, hi: float, far: float, step_px: float,
              rng: np.random.Generator) -> tuple[list[str | None], list[str | None]]:
    """Out and back action names (k each; None = noop) for a round trip of segments from ``start``.

    Segments of ``HOLD`` + ``PAUSE`` frames (shorter when k < 8), each planned to move ``step_px``
    along one axis, staying in [lo, hi]; any remainder of k is noops at the turning point.
    """
    seg = min(HOLD + PAUSE, k)
    hold = max(1, seg * HOLD // (HOLD + PAUSE))
    step = step_px * hold / HOLD
    pos, prev, dirs = np.asarray(start, np.float64), None, []
    away = np.sign((lo + hi) / 2 - pos)  # (2,): leave towards the middle of the world, where there is room
    for _ in range(k // seg):
        cands = [(d, pos + step * np.array(v), v) for d, v in _DIRS.items()]
        cands = [(d, q, v) for d, q, v in cands if (lo <= q).all() and (q <= hi).all()]
        if np.abs(pos - start).max() < far:  # leave: along an axis towards the middle
            ok = [(d, q) for d, q, v in cands if (np.array(v) * away > 0).any()] or [(d, q) for d, q, _ in cands]
        else:  # wander, without coming back into view of the start
            ok = [(d, q) for d, q, _ in cands if np.abs(q - start).max() >= far] or [(d, q) for d, q, _ in cands]
        keep = [(d, q) for d, q in ok if d == prev]
        d, pos = keep[0] if keep and rng.random() < KEEP_DIR else ok[int(rng.integers(len(ok)))]
        dirs.append(d)
        prev = d
    out: list[str | None] = [x for d in dirs for x in [d] * hold + [None] * (seg - hold)]
    back: list[str | None] = [None] * (k - len(out))
    back += [x for d in reversed(dirs) for x in [_OPPOSITE[d]] * hold + [None] * (seg - hold)]
    return out + [None] * (k - len(out)), back


def _start(world: int, view: int, snap: int, lo: float, corner: np.ndarray) -> np.ndarray:
    """A start (x, y) about 3/4 view from the walls in ``corner`` (0/1 per axis), at a camera-cell centre."""
    p = view / 2 + snap * round((lo + 0.75 * view - view / 2) / snap)  # camera = p - view/2: a multiple of snap
    q = view / 2 + snap * round((world - p - view / 2) / snap)  # mirrored, still a cell centre
    return np.where(corner == 1, q, p).astype(np.float64)


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """PSNR per frame of uint8 (..., H, W, 3) over pixels where ``mask`` (..., H, W) is False (as metrics.psnr)."""
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    keep = ~np.asarray(mask)
    mse = (d.mean(-1) * keep).sum((-2, -1)) / np.maximum(keep.sum((-2, -1)), 1)
    return 10.0 * np.log10(PEAK**2 / np.maximum(mse, MIN_MSE))


def _probe(env: Any, seed: int, k: int, context: int, revisit: int, ids: dict[str | None, int],
           agent_half: int) -> dict[str, Any] | None:
    """One round trip in the true env; None if the truth does not come back to the departure camera.
    ``agent_half``: the env's agent box prior (envs.registry), left out of the static-scene score."""
    cfg = env.unwrapped.cfg
    lo, hi = WALL_PX + cfg.agent_radius + 6, cfg.world_size - WALL_PX - cfg.agent_radius - 6
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    start = _start(cfg.world_size, cfg.view, cfg.camera_snap, lo, rng.integers(2, size=2))
    frames = [env.unwrapped.place(agent_pos=tuple(start), agent_vel=(0.0, 0.0))]
    info: dict[str, Any] = {"state": env.unwrapped.get_state()}
    lm_keys = ("landmark_pos_view", "landmark_radius", "landmark_color")
    for _ in range(context - 1):
        obs, _, _, _, info = env.step(ids[None])
        frames.append(obs)
    cam0, pos0 = info["state"]["camera"].copy(), info["state"]["agent_pos"].copy()
    out, back = plan_path(k, pos0, lo, hi, far=cfg.view + 16, step_px=cfg.max_speed * HOLD, rng=rng)
    actions = np.array([ids[a] for a in out + back + [None] * revisit], np.int64)
    balls0 = info["state"]["ball_pos_view"].copy()
    truth, cams, balls, marks = [], [], [], []
    for a in actions:
        obs, _, _, _, info = env.step(int(a))
        truth.append(obs)
        cams.append(info["state"]["camera"])
        balls.append(info["state"]["ball_pos_view"])
        marks.append({k: info["state"][k] for k in lm_keys if k in info["state"]})
    cams = np.stack(cams)
    if not (cams[-revisit:] == cam0).all():
        return None
    # Static-scene mask of each revisit frame: the balls there, at the departure and at the turning point
    # (all moved, none is the place), and the agent sprite; True = excluded.
    near = np.concatenate([np.stack(balls[-revisit:]), np.broadcast_to(balls0, (revisit, *balls0.shape)),
                           np.broadcast_to(balls[k - 1], (revisit, *balls0.shape))], 1)  # (R, 3 n_balls, 2)
    mask = box_mask((cfg.view, cfg.view), near, half=int(np.ceil(cfg.ball_radius)) + 2,
                    base=central_mask((cfg.view, cfg.view), agent_half))
    landmarks = {k: np.stack([m[k] for m in marks[-revisit:]]) for k in marks[-1]}  # (R, n, ...) at the revisit
    kinds = objects_from_state({k: np.asarray(v)[None, None] for k, v in info["state"].items()})
    colors = np.concatenate([o.color[0, 0] for o in kinds], 0) if kinds else np.zeros((0, 3), np.float32)  # (k, 3)
    color_kinds = [o.kind for o in kinds for _ in range(o.color.shape[2])]  # (k,): whose colour each is
    return {"seed": seed, "context": np.stack(frames), "actions": actions, "truth": np.stack(truth), "mask": mask,
            "landmarks": landmarks, "colors": colors, "color_kinds": color_kinds, "camera": cams - cam0,  # (N, 2) px from the departure's, per generated frame
            "far_px": float(np.abs(cams - cam0).max()), "pos_err": float(np.abs(info["state"]["agent_pos"] - pos0).max())}


def _false_by_kind(frames: np.ndarray, truth: np.ndarray, colors: np.ndarray, kinds: list[str]) -> dict[str, float]:
    """The share of ``frames`` (P, R, H, W, 3) with a false object of each kind's colours (``colors`` (P, k, 3), whose
    kinds ``kinds`` (k,) name): balls copied back from where they were, apart from landmarks drawn where none is."""
    out = {}
    for kind in dict.fromkeys(kinds):
        idx = [i for i, x in enumerate(kinds) if x == kind]
        out[kind] = float(false_objects(frames, truth, colors[:, idx]).mean())
    return out


def gather_probes(model: WorldModel, env: Any, k: int, probes: int, *, seed: int = SEED, context: int = 4, revisit: int = 4,
                  tries: int = 16) -> tuple[list[dict[str, Any]], int]:
    """The first ``probes`` round trips of k frames out and back (seeds in order from ``seed``) that the truth
    retraces, from the truth env ``env`` (``make_truth_env(model, "persistence")``), and how many seeds were tried."""
    spec = model.action_spec
    ids: dict[str | None, int] = {None: spec.index("noop"), **{d: spec.index(d) for d in _DIRS}}
    got: list[dict[str, Any]] = []
    tried = 0
    while len(got) < probes:
        if tried >= tries * probes:
            raise RuntimeError(f"persistence: k={k}: only {len(got)} of {probes} round trips came back to the "
                               f"departure view in {tried} seeds from {seed}; raise tries or lower probes")
        p = _probe(env, seed + tried, k, context, revisit, ids, agent_half_px(model.config.get("env")))
        tried += 1
        if p is not None:
            got.append(p)
    return got, tried


@torch.inference_mode()
def _generate(model: WorldModel, probes: list[dict[str, Any]], overrides: dict[str, Any], progress: bool,
              k: int) -> tuple[np.ndarray, Any]:
    """Roll all probes of one k out together: frames (P, N, H, W, 3) uint8 and the SimConfig used."""
    ctx = np.stack([p["context"] for p in probes])
    acts = np.stack([p["actions"] for p in probes])  # (P, N)
    run = generate(model, ctx, np.zeros(ctx.shape[:2], np.int64), acts, batch=len(probes), overrides=overrides,
                   desc=f"persistence k={k}", progress=progress)  # the context is still: all noops
    return run.frames, run.sim_cfg


def landmark_permanence(frames: dict[str, np.ndarray], truth: np.ndarray, probes: list[dict[str, Any]]
                        ) -> tuple[dict[str, float | None], int]:
    """Share of the landmarks fully in the true revisit frames that each of ``frames`` (name -> (P, R, H, W, 3))
    draws in place (:func:`worldloom.eval.objects.detect`; None where the truth shows none), and how many
    landmarks (per probe, counted once) that share is over."""
    from .objects import detect

    if not probes[0]["landmarks"]:
        return {name: None for name in frames}, 0
    state = {k: np.stack([p["landmarks"][k] for p in probes]) for k in probes[0]["landmarks"]}  # (P, R, n, ...)
    det = detect(frames, truth, objects_from_state(state))
    vis = det["visible"]["landmark"]  # (P, R, n)
    if not vis.any():
        return {name: None for name in frames}, 0
    return ({name: float(np.isfinite(det["centroid"][name]["landmark"][..., 0])[vis].mean()) for name in frames},
            int(vis.any(1).sum()))


@torch.inference_mode()
def run_persistence(
    model: WorldModel,
    *,
    ks: tuple[int, ...] = KS,
    probes: int = 3,
    seed: int = SEED,
    context: int = 4,
    revisit: int = 4,
    tries: int = 16,
    sim_overrides: dict[str, Any] | None = None,
    memories: tuple[str, ...] | None = None,
    lpips: bool | None = None,
    progress: bool = False,
) -> SuiteResult:
    """Go-and-return probes on the arena: the revisit frames against the simulator per k and memory.

    Args:
        model: a loaded arena world model.
        ks: frames spent going away (and as many coming back); each >= 2.
        probes: round trips per k, rolled out together in one Simulator.
        seed: first arena seed; probe seeds are tried in order from it (the same for every k).
        context: still frames at the start place the Simulator is reset on.
        revisit: still frames at the start place after the return; the scored frames.
        tries: seeds tried per probe before giving up (the truth must come back to the departure view).
        sim_overrides: SimConfig fields to override (window, memory and its settings set the context policy).
        memories: context policies to compare on this one model, side by side on the same probes
            (e.g. ``("window", "place", "similar")``); None = the one ``sim_overrides`` (or the checkpoint) names.
        lpips: LPIPS of the revisit frames (None: where the converted weights exist).
        progress: a bar per k (only on a terminal).
    """
    from .fidelity import optional_lpips
    from .lpips import frame_lpips

    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 2 or len(set(ks)) != len(ks):
        raise ValueError(f"persistence: ks must be distinct integers >= 2, got {ks}")
    for name, v in (("probes", probes), ("context", context), ("revisit", revisit), ("tries", tries)):
        if int(v) < 1:
            raise ValueError(f"persistence: {name} must be >= 1, got {v}")
    env = make_truth_env(model, "persistence")
    base = dict(sim_overrides or {})
    mems = [None] if not memories else list(dict.fromkeys(memories))
    notes: list[str] = []
    lp = optional_lpips(lpips, torch.device("cpu"), notes)
    lpips_of = (lambda a, b: float(frame_lpips(a, b, lp).mean())) if lp is not None else (lambda a, b: None)  # noqa: E731
    rows, per_memory, videos, cfgs, trip_curve = [], {}, {}, {}, None
    for k in ks:
        got, tried = gather_probes(model, env, k, probes, seed=seed, context=context, revisit=revisit, tries=tries)
        truth = np.stack([p["truth"] for p in got])
        mask = np.stack([p["mask"] for p in got])  # (P, R, H, W)
        depart = np.stack([p["context"][-1] for p in got])  # (P, H, W, 3)
        rev_t = truth[:, -revisit:]
        memory = np.ascontiguousarray(np.broadcast_to(depart[:, None], rev_t.shape))  # a perfect memory of the place
        far = np.ascontiguousarray(np.broadcast_to(truth[:, k - 1, None], rev_t.shape))  # the turning point: not the place
        recon = reconstruct(model, rev_t)
        first_m = reconstruct(model, depart[:1])  # the videos' first frame, the same for every memory
        refs, n_marks = landmark_permanence({"memory": memory, "far": far, "recon": recon}, rev_t, got)
        colors = np.stack([p["colors"] for p in got])  # (P, k, 3): every object colour of the world
        ghosts = lambda f: float(false_objects(f, rev_t, colors).mean()) if colors.shape[1] else None  # noqa: E731
        by_kind = lambda f: _false_by_kind(f, rev_t, colors, got[0]["color_kinds"])  # noqa: E731
        ref = {"psnr_memory_static": masked_psnr(memory, rev_t, mask).mean(), "psnr_memory": psnr(memory, rev_t).mean(),
               "ssim_memory": ssim(memory, rev_t).mean(), "psnr_far_static": masked_psnr(far, rev_t, mask).mean(),
               "psnr_recon": psnr(recon, rev_t).mean(), "lpips_memory": lpips_of(memory, rev_t),
               "lpips_far": lpips_of(far, rev_t), "lpips_recon": lpips_of(recon, rev_t),
               "landmarks_memory": refs["memory"], "landmarks_far": refs["far"], "landmarks_recon": refs["recon"],
               "landmarks_seen": n_marks, "false_memory": ghosts(memory), "false_recon": ghosts(recon),
               "false_memory_by_kind": by_kind(memory)}
        for mem in mems:
            over = base if mem is None else {**base, "memory": mem}
            gen, cfg = _generate(model, got, over, progress, k)  # (P, 2k + revisit, H, W, 3)
            name = cfg.resolved_memory()[0]
            cfgs[name] = cfg
            rev_m = gen[:, -revisit:]
            r = {
                "memory": name, "k": k, "frames_away": 2 * k, "probes": len(got), "seeds_tried": tried,
                "accept_rate": len(got) / tried, "psnr": psnr(rev_m, rev_t).mean(), "ssim": ssim(rev_m, rev_t).mean(),
                "psnr_static": masked_psnr(rev_m, rev_t, mask).mean(), "lpips": lpips_of(rev_m, rev_t),
                "landmarks": landmark_permanence({"model": rev_m}, rev_t, got)[0]["model"], "false": ghosts(rev_m),
                "false_by_kind": by_kind(rev_m), **ref,
                "far_px": float(np.mean([p["far_px"] for p in got])),
                "pos_err_px": float(np.mean([p["pos_err"] for p in got])),
                "departure_in_context": 2 * k + 1 < cfg.window,  # in the window of the 1st revisit frame
            }
            per_memory.setdefault(name, []).append(r)
            fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
            rows.append([name, k, 2 * k, f"{r['psnr']:.2f}", f"{r['ssim']:.3f}",
                         *(f"{r[c]:.2f}" for c in ("psnr_static", "psnr_memory_static", "psnr_far_static", "psnr_recon")),
                         fmt(r["lpips"], ".3f"), fmt(r["landmarks"], ".1%") + (f" of {n_marks}" if n_marks else ""), fmt(r["landmarks_memory"], ".1%"),
                         fmt(r["landmarks_far"], ".1%"), fmt(r["false"], ".1%"),
                         ", ".join(f"{kd} {v:.1%}" for kd, v in r["false_by_kind"].items()) or "-", fmt(r["false_memory"], ".1%"),
                         "yes" if r["departure_in_context"] else "no",
                         f"{len(got)}/{tried}", f"{r['pos_err_px']:.2f}", f"{r['far_px']:.0f}"])
            if k == max(ks) and trip_curve is None:
                trip_curve = (k, psnr(gen, truth).mean(0))  # (2k + revisit,)
            if mem is mems[0] or mem == mems[-1]:
                videos[f"k={k}, {name}: round trip, probe 0"] = side_by_side(np.concatenate([first_m, gen[0]]),
                                                                            np.concatenate([depart[:1], truth[0]]))
    env.close()

    first = next(iter(per_memory))
    per_k, sim_cfg = per_memory[first], cfgs[first]
    policy = sim_cfg.context_policy()
    metrics: dict[str, Any] = {}
    for key in ("psnr", "psnr_static", "ssim", "lpips", "landmarks", "false"):
        metrics.update({f"{key}_k{r['k']}": r[key] for r in per_k})
    metrics.update({"context_window": sim_cfg.window, "context_sink": sim_cfg.sink, "memory": first, "per_k": per_k,
                    "per_memory": per_memory, "settings": {
                        "ks": list(ks), "probes": probes, "seed": seed, "context": context, "revisit": revisit,
                        "tries": tries, "segment": {"hold": HOLD, "pause": PAUSE}, "context_policy": policy,
                        "memories": list(per_memory), "sim": asdict(sim_cfg)}})
    xs = [float(k) for k in ks]
    tables = [Table("Revisit frames against the simulator, per memory and k (PSNR dB, mean over probes and revisit "
                    "frames; static: balls and agent masked out; landmarks: share drawn in place; false objects: share of "
                    "revisit frames with an object-coloured blob where the truth has none, e.g. a ball copied from memory "
                    "that has since moved)",
                    ["memory", "k", "frames away", "model PSNR", "model SSIM", "model PSNR static", "perfect memory static",
                     "no memory static", "tokenizer (ceiling)", "model LPIPS", "model landmarks", "perfect memory landmarks",
                     "no memory landmarks", "model false objects", "of them by kind", "perfect memory false objects", "departure in window", "probes/seeds", "agent error px", "farthest px"], rows)]
    col = lambda key, rs=per_k: [r[key] for r in rs]  # noqa: E731
    plots = [
        Plot("Persistence: revisit PSNR against k", "k (frames away, each way)", "PSNR (dB)", xs,
             # perfect memory, static, is ~78 dB (identical; the PSNR clamp): in the table, not here
             {**{f"{m}, static": col("psnr_static", rs) for m, rs in per_memory.items()},
              "perfect memory, full frame (balls moved)": col("psnr_memory"),
              "no memory, static (true turning-point frame)": col("psnr_far_static"),
              "tokenizer reconstruction": col("psnr_recon")}, logx=True),
        Plot("Persistence: revisit SSIM against k", "k (frames away, each way)", "SSIM", xs,
             {**{m: col("ssim", rs) for m, rs in per_memory.items()}, "perfect memory (true departure frame)": col("ssim_memory")},
             logx=True),
    ]
    if trip_curve is not None:
        k, curve = trip_curve
        plots.append(Plot(f"PSNR along the round trip, k={k} (out, back, revisit), {first}", "frame after the departure",
                          "PSNR (dB)", [float(i) for i in range(1, len(curve) + 1)], {"model": list(curve)}))
    notes = [f"Context policy: {policy}" + (f"; compared: {', '.join(per_memory)}" if len(per_memory) > 1 else "")
             + f". Departure = the last of {context} still context frames; revisit = {revisit} still frames after the "
             f"return (2k + {revisit} generated frames per probe).",
             f"{probes} probes per k from arena seeds {seed}+, each accepted only if the simulator's camera comes back "
             "exactly. Static PSNR leaves out the agent sprite and boxes around the balls (at the revisit, the "
             "departure and the turning point), i.e. scores the place itself. Perfect memory = the true departure "
             "frame; no memory = the true frame at the turning point.",
             *notes, "Videos: model | simulator | |difference| x4, from the departure frame."]
    return SuiteResult("persistence", metrics, tables, plots, videos, notes=notes)


__all__ = ["KS", "SEED", "landmark_permanence", "masked_psnr", "plan_path", "run_persistence"]
