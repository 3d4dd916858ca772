"""Objects scored from ground truth: is each object the truth shows drawn, where, and nothing else?

Whole-frame PSNR is dominated by the background: a model that scrolls the floor and erases every ball
beats copy-last by dB. This module scores the objects an env reports in ``info["state"]``, frame by
frame, against the true frames:

- **permanence**: an object fully in the true view is *drawn* when, inside a box of half-size
  ``radius + slack`` around its true position, at least half as many pixels are classified as its
  colour in the generated frame as in the true one, their centroid lies within the object's radius
  of the true one (it overlaps its true centre: a ball left behind where it was is not "drawn"), and
  they keep at least ``MIN_CONTRAST`` of the truth's colour step (below, a faint tint is not the object);
- **position error**: the distance, px, between the centroid of those pixels in the generated frame and
  in the true frame (like against like, so a partly covered object is not an error);
- **contrast**: how sharp a drawn object is. Over the true object's pixels, moved to where it is drawn,
  the mean of how far each pixel goes from the local floor colour towards the object's (a projection on
  that colour step, clipped to [0, 1]), relative to the true frame's own. 1 is as sharp as the truth; a
  3x3 box blur leaves a ball ~0.86; on 60 validation layouts the arena tokenizer's reconstruction keeps
  ~0.91 of balls' and ~0.90 of landmarks' step. Permanence counts a soft blob of the right colour in the
  right place down to ``MIN_CONTRAST``; this says how soft;
- **shape**: whether a drawn object keeps its outline. The intersection over union of the true object's
  counted pixels and the drawn ones, moved onto each other by their centroids' difference, both taken by
  the same rule. A cross drawn as a round blob of its colour passes permanence and contrast, and scores
  well under a cross's own (the truth scores 1); reported, never gating permanence;
- **false objects** and **haze**: object colours drawn, clearly or as a half-tone smear, where the truth
  has none (``eval/haze.py``).

Objects are split into those **seen** in the context (fully in view in its last frame: knowable) and
those that **entered** the view later (unknowable without memory: reported, never targeted).

Key choices:

- **Objects from the state, by convention**: every ``<kind>_pos_view`` key (n, 2) or (2,) with
  ``<kind>_radius`` and ``<kind>_color`` is a kind of object (the arena: ``agent``, ``ball``,
  ``landmark``). A world that reports these keys is scored with no code of its own.
- **Nearest-colour classification.** A pixel belongs to an object when, among the object's colour, the
  local floor colour (median of the true frame in a ring of 2-6 px around the object's box, other objects
  left out) and the colours of the other objects whose boxes touch the window, the object's colour is
  the nearest. A blurred ball that is more floor than ball is not drawn; another object's pixels are
  not counted as this one's. The object's colour is the one the truth *shows* it in: the floor plus
  the share of the colour step its most covered true pixel reaches (1 for any object that covers a
  whole pixel). An object smaller than a pixel (Pong's ball at 64 px, 0.8 x 1.6 px) is only ever a blend,
  and by the full colour's midpoint its peak pixel sat on the threshold: a reconstruction with the same
  pixel to 1 level out of 92 was "not drawn" in 35 % of frames (tokenizer ceiling 63 %; 98 % by this rule,
  on 30 validation episodes, BENCHMARKS). Fainter than ``MIN_PEAK`` in the truth, it is not scored; a
  faint one's palette also holds its neighbours' edge blends (``BLENDS``), so a neighbour's soft edge is
  not taken for it. The same rule on the true frame sets the reference count (an object the
  rule cannot find in the truth is not scored), so true frames score 100 % by construction and a
  frame with the object painted out scores 0 % (tests/eval/test_objects.py).
- **A blob, not a colour count.** The counted pixels are those inside a disc of the object's radius
  around their centroid, and only if they are ``BLOB`` times denser there than in the rest of the box.
  Without that, uniform noise scored 100 % on the persistence probes' landmarks: with two or three
  palette colours, about half of any noise is "nearest" the object's colour, centred on the box.
- **Baselines the same way**: the tokenizer reconstruction (ceiling) and copy-last through the same
  detector; the constant-velocity oracle (every object moved along its last true velocity, the true
  camera) in state space: drawn when its predicted position is within the object's radius of the
  truth, error the distance. It knows no collisions: a model that does should beat it at long horizons.
- **Motion following**: over the steps where an object moves in the true frames (its detected centroid, at
  least ``MOVE_PX``), the share where the drawn one moves at least ``FOLLOW_SHARE`` of the true step the
  same way: a paddle that follows the keys (Pong, found at the emulator's RAM position), landmarks that
  follow the camera's scroll. Like against like, as for the position error: the true frames score 100 %.
- **Ball motion** (PhyWorld): velocities are finite differences of the drawn centroids in world px
  (the true camera added back) against the same differences of the true-frame centroids, over pairs
  where the ball is drawn at both ends; the same measurement on the reconstruction is the floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .haze import (FALSE_PX, FALSE_TAU, HAZE_CELL, HAZE_LINE, HAZE_REACH, HAZE_SHARE, SLACK, dilate, false_objects,
                   haze_objects, haze_tint)

MIN_PX = 6  # true-frame pixels an object needs to be scored at all (fewer for one smaller than that: min_px)
MOVE_PX = 0.5  # px: a true step at least this long is a moving step for motion following
FOLLOW_SHARE = 1 / 3  # a drawn object follows a moving step when it moves this share of the true step along it
SPANS = (8, 16)  # frames: the spans h1-S scored besides the whole rollout (the targets are h1-8, h1-16, h1-N)
TINY_R = 1.0  # px: the least radius the blob disc and the drawn-centre tolerance use (a 1-2 px Atari ball)


def min_px(r: float) -> int:
    """True-frame pixels an object of radius ``r`` px needs to be scored: ``MIN_PX``, or half its disc's
    area for an object too small to cover that many (Pong's ball at 64-128 px is 1-4 px)."""
    return int(min(MIN_PX, max(1, round(0.5 * np.pi * r * r))))
RING = (2, 6)  # px: the ring (beyond the box) where the local floor colour is taken
BLOB = 3.0  # a drawn object's colour is this many times denser inside its disc than in the rest of its box
# The least contrast a drawn object keeps. Nearest-colour counting alone took a faint darkening beside the
# agent for a brown landmark the model never drew (contrast 0.24 in ../shared/tools/look.py's second layout);
# a 3x3 blur keeps ~0.86, the tokenizer ~0.9.
MIN_CONTRAST = 0.5
# The least share of its colour step an object's most covered true pixel shows for it to be scored. At 64 px
# Pong's ball (0.8 x 1.6 px) peaks at 0.3-0.8 of its step; fainter than a quarter, noise decides.
MIN_PEAK = 0.25
BLENDS = np.array([0.25, 0.5, 0.75], np.float32)  # a neighbour's edge blends set beside a faint object's colour


@dataclass
class Objects:
    """The objects of one kind over a batch of rollouts: positions (E, N, n, 2) view px, radius (E, N, n),
    colour (E, N, n, 3); optional world positions, velocities (px/step) and camera (E, N, 2)."""

    kind: str
    pos_view: np.ndarray
    radius: np.ndarray
    color: np.ndarray
    pos: np.ndarray | None = None
    vel: np.ndarray | None = None
    camera: np.ndarray | None = None


def objects_from_state(state: dict[str, np.ndarray]) -> list[Objects]:
    """The kinds of object in stacked state arrays (E, N, ...): every ``<kind>_pos_view`` with radius and colour."""
    out = []
    cam = state.get("camera")
    for key in sorted(state):
        if not key.endswith("_pos_view"):
            continue
        kind = key[: -len("_pos_view")]
        if f"{kind}_radius" not in state or f"{kind}_color" not in state:
            continue
        pv = np.asarray(state[key], np.float32)
        if pv.ndim not in (3, 4) or pv.shape[-1] != 2:
            raise ValueError(f"state[{key!r}]: expected (E, N, 2) or (E, N, n, 2) view positions, got {pv.shape}")
        single = pv.ndim == 3  # (E, N, 2): one object of this kind
        lift = (lambda a: np.asarray(a, np.float32)[..., None, :]) if single else (lambda a: np.asarray(a, np.float32))
        rad = np.asarray(state[f"{kind}_radius"], np.float32)
        pos = state.get(f"{kind}_pos")
        vel = state.get(f"{kind}_vel")
        out.append(Objects(kind, lift(pv), rad[..., None] if single else rad, lift(state[f"{kind}_color"]),
                           None if pos is None else lift(pos), None if vel is None else lift(vel),
                           None if cam is None else np.asarray(cam, np.float32)))
    return out


def episode_objects(state: dict[str, Any], kind: str, where: str = "episode") -> Objects:
    """The objects of ``kind`` in one episode's state arrays (N, ...), as :func:`objects_from_state` gives them for
    a batch of one (E = 1). Raises naming ``where`` and the kinds present if the state does not report ``kind``."""
    objs = objects_from_state({k: np.asarray(v)[None] for k, v in state.items()})
    mine = next((o for o in objs if o.kind == kind), None)
    if mine is None:
        raise ValueError(f"{where}: the state has no objects of kind {kind!r} (needs {kind}_pos_view, {kind}_radius and "
                         f"{kind}_color); kinds present: {', '.join(o.kind for o in objs) or 'none'}")
    return mine


def _box(H: int, W: int, cx: float, cy: float, half: float) -> tuple[int, int, int, int]:
    return max(int(np.floor(cy - half)), 0), min(int(np.ceil(cy + half)) + 1, H), \
        max(int(np.floor(cx - half)), 0), min(int(np.ceil(cx + half)) + 1, W)


def _classify(px: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Index of the nearest colour: pixels (h, w, 3) float, colours (k, 3) -> (h, w) int."""
    d = ((px[:, :, None, :] - colors[None, None]) ** 2).sum(-1)  # (h, w, k)
    return d.argmin(-1)


def detect(frames: dict[str, np.ndarray], truth: np.ndarray, objs: list[Objects], slack: int = SLACK) -> dict[str, Any]:
    """Find every fully-in-view object of ``objs`` in each of ``frames`` (name -> (E, N, H, W, 3) uint8).

    Returns ``{"visible": {kind: (E, N, n) bool}, "centroid": {name: {kind: (E, N, n, 2)}}`` (NaN where not
    drawn), ``"contrast"`` and ``"shape"`` ({name: {kind: (E, N, n)}}, NaN where not drawn) and ``"truth_centroid"``;
    ``truth`` (E, N, H, W, 3) uint8 is the reference.
    """
    E, N, H, W, _ = truth.shape
    all_pos = np.concatenate([o.pos_view for o in objs], 2)  # (E, N, M, 2)
    all_rad = np.concatenate([o.radius for o in objs], 2)  # (E, N, M)
    all_col = np.concatenate([o.color for o in objs], 2).astype(np.float32)  # (E, N, M, 3)
    offsets = np.cumsum([0] + [o.pos_view.shape[2] for o in objs])
    visible = {o.kind: np.zeros((E, N, o.pos_view.shape[2]), bool) for o in objs}
    tcent = {o.kind: np.full((E, N, o.pos_view.shape[2], 2), np.nan, np.float32) for o in objs}
    cent = {name: {o.kind: np.full_like(tcent[o.kind], np.nan) for o in objs} for name in frames}
    contrast = {name: {o.kind: np.full(tcent[o.kind].shape[:3], np.nan, np.float32) for o in objs} for name in frames}
    shape = {name: {o.kind: np.full(tcent[o.kind].shape[:3], np.nan, np.float32) for o in objs} for name in frames}
    for e in range(E):
        for t in range(N):
            tf = truth[e, t].astype(np.float32)
            P, R, C = all_pos[e, t], all_rad[e, t], all_col[e, t]
            for k, o in enumerate(objs):
                for j in range(o.pos_view.shape[2]):
                    m = offsets[k] + j
                    (cx, cy), r = P[m], float(R[m])
                    need, rb = min_px(r), max(r, TINY_R)  # pixels to score it; blob disc and tolerance radius
                    if cx - r < 0 or cy - r < 0 or cx + r > W or cy + r > H:
                        continue  # not fully in view
                    half = r + slack
                    y0, y1, x0, x1 = _box(H, W, cx, cy, half)
                    # Local floor: a ring beyond the object's box, other objects' boxes left out.
                    ry0, ry1, rx0, rx1 = _box(H, W, cx, cy, r + RING[1])
                    yy, xx = np.mgrid[ry0:ry1, rx0:rx1]
                    cheb = np.maximum(np.abs(xx + 0.5 - cx), np.abs(yy + 0.5 - cy))
                    ring = cheb > r + RING[0]
                    others = [i for i in range(len(P)) if i != m and
                              max(abs(P[i, 0] - cx), abs(P[i, 1] - cy)) < half + R[i] + RING[1]]
                    for i in others:
                        ring &= np.maximum(np.abs(xx + 0.5 - P[i, 0]), np.abs(yy + 0.5 - P[i, 1])) > R[i] + 1
                    if ring.sum() < 8:
                        continue  # no floor to tell the object from
                    floor = np.median(tf[ry0:ry1, rx0:rx1][ring], 0)
                    near = [i for i in others if max(abs(P[i, 0] - cx), abs(P[i, 1] - cy)) < half + R[i]]
                    axis = C[m] - floor  # (3,): floor -> object colour
                    norm = max(float(axis @ axis), 1.0)
                    # The colour the truth shows it in: an object smaller than a pixel is only ever a blend
                    # with the floor, and the midpoint to the full colour would split its peak pixel by noise.
                    fy0, fy1, fx0, fx1 = _box(H, W, cx, cy, r + 0.5)
                    peak = float(np.clip((tf[fy0:fy1, fx0:fx1] - floor) @ axis / norm, 0, 1).max())
                    if peak < MIN_PEAK:
                        continue  # too faint in the truth to tell from the floor: not scored
                    shown = floor + peak * axis  # (3,)
                    palette = np.concatenate([shown[None], floor[None], C[near]], 0)  # (k, 3); 0 = this object
                    if peak < 1.0 and near:  # a faint object: a neighbour's blended edge must not pass for it
                        blends = floor + BLENDS[:, None, None] * (C[near] - floor)  # (3, len(near), 3)
                        palette = np.concatenate([palette, blends.reshape(-1, 3)], 0)
                    yy, xx = np.mgrid[y0:y1, x0:x1]

                    def centroid(img: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
                        """Pixels of this object's colour in one compact blob of its size (box mask), and their
                        centroid (NaN: none)."""
                        hit = _classify(img[y0:y1, x0:x1].astype(np.float32), palette) == 0
                        if not hit.any():
                            return 0, np.full(2, np.nan), hit
                        c = np.array([xx[hit].mean() + 0.5, yy[hit].mean() + 0.5])
                        disc = np.hypot(xx + 0.5 - c[0], yy + 0.5 - c[1]) <= rb
                        n_in, n_out = int((hit & disc).sum()), int((hit & ~disc).sum())
                        # Scattered pixels (noise) put as many hits outside the disc as inside: no blob there.
                        if n_in == 0 or n_in / max(disc.sum(), 1) < BLOB * n_out / max((~disc).sum(), 1):
                            return 0, np.full(2, np.nan), hit
                        return n_in, np.array([xx[hit & disc].mean() + 0.5, yy[hit & disc].mean() + 0.5]), hit & disc

                    n_true, c_true, m_true = centroid(tf)
                    if n_true < need or np.hypot(c_true[0] - cx, c_true[1] - cy) > rb + 1:
                        continue  # the rule cannot find it in the truth (covered, or beside its own colour): not scored
                    visible[o.kind][e, t, j] = True
                    tcent[o.kind][e, t, j] = c_true
                    ys, xs = yy[m_true], xx[m_true]  # the object's true pixels
                    ref = float(np.clip((tf[ys, xs] - floor) @ axis / norm, 0, 1).mean())
                    for name, fr in frames.items():
                        n, c, m_drawn = centroid(fr[e, t])
                        if n < 0.5 * n_true or np.hypot(*(c - c_true)) > rb:
                            continue
                        # Contrast: how far from floor to object colour the drawn pixels go, over the true
                        # object's shape moved to where it is drawn, relative to the truth's own.
                        dx, dy = np.rint(c - c_true).astype(int)
                        sy, sx = np.clip(ys + dy, 0, H - 1), np.clip(xs + dx, 0, W - 1)
                        a = np.clip((fr[e, t, sy, sx].astype(np.float32) - floor) @ axis / norm, 0, 1).mean()
                        kept = min(float(a) / max(ref, 1e-6), 1.0)
                        if kept >= MIN_CONTRAST:
                            cent[name][o.kind][e, t, j], contrast[name][o.kind][e, t, j] = c, kept
                            shape[name][o.kind][e, t, j] = _iou(ys, xs, yy[m_drawn] - dy, xx[m_drawn] - dx)
    return {"visible": visible, "centroid": cent, "truth_centroid": tcent, "contrast": contrast, "shape": shape}


def _iou(ya: np.ndarray, xa: np.ndarray, yb: np.ndarray, xb: np.ndarray) -> float:
    """Intersection over union of two pixel sets given as row and column arrays (any integers)."""
    a, b = set(zip(ya.tolist(), xa.tolist())), set(zip(yb.tolist(), xb.tolist()))
    return len(a & b) / max(len(a | b), 1)


def cv_oracle(objs: Objects, context_index: int = 0) -> np.ndarray:
    """Constant-velocity positions (E, N, n, 2) in view px: each object moved along its true velocity at
    ``context_index`` (px/step; 0 without ``vel``), seen through the true camera (none: a still view)."""
    base = objs.pos if objs.pos is not None else objs.pos_view
    vel = objs.vel if objs.vel is not None else np.zeros_like(base)
    h = np.arange(base.shape[1], dtype=np.float32) - context_index  # steps after the reference frame
    world = base[:, context_index, None] + h[None, :, None, None] * vel[:, context_index, None]  # (E, N, n, 2)
    if objs.pos is not None and objs.camera is not None:
        return world - objs.camera[:, :, None, :]
    return world


def _share(num: np.ndarray, den: np.ndarray) -> float | None:
    return float(num.sum() / den.sum()) if den.sum() else None


def _median(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else None


def score_objects(frames: dict[str, np.ndarray], truth: np.ndarray, state: dict[str, np.ndarray],
                  horizons: tuple[int, ...] = (1, 2, 4, 8, 16, 32), motion_upto: int = 16,
                  slack: int = SLACK, structure: Any = None) -> dict[str, Any] | None:
    """Object scores of generated frames against the truth; None when the state reports no objects.

    ``truth`` (E, 1 + N, H, W, 3) and ``state`` arrays (E, 1 + N, ...) start at the last context frame
    (index 0: which objects the context showed); ``frames`` maps a name (model, copy_last, recon, ...) to
    (E, N, H, W, 3) frames for steps 1..N. Returns, per name and kind, permanence per horizon and over
    h1-8 / h1-N for objects ``seen`` in the context and ``entered`` later, median position errors, ball
    velocity error against the state (with the true frames' own error, the floor), and the share of frames
    with a false object; plus ``cv_oracle``, the constant-velocity oracle scored the same way.
    """
    objs = objects_from_state(state)
    if not objs:
        return None
    E, N1 = truth.shape[:2]
    N = N1 - 1
    det = detect({k: np.concatenate([truth[:, :1], v], 1) for k, v in frames.items()}, truth, objs, slack)
    vis = det["visible"]
    hs = [h for h in horizons if h <= N] + ([N] if N not in horizons else [])
    spans = sorted({min(u, N) for u in SPANS} | {N})

    def summary(drawn: dict[str, np.ndarray], err: dict[str, np.ndarray],
                looks: dict[str, dict[str, np.ndarray]] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for o in objs:
            v, d, er = vis[o.kind][:, 1:], drawn[o.kind][:, 1:], err[o.kind][:, 1:]  # (E, N, n)
            seen = np.broadcast_to(vis[o.kind][:, :1], v.shape)
            row: dict[str, Any] = {}
            for split, sel in (("seen", v & seen), ("entered", v & ~seen)):
                row[split] = {
                    "permanence": [_share(d[:, h - 1] & sel[:, h - 1], sel[:, h - 1]) for h in range(1, N + 1)],
                    **{f"permanence_h1_{u}": _share(d[:, :u] & sel[:, :u], sel[:, :u]) for u in spans},
                    "n_h1_%d" % N: int(sel.sum()),
                    "position_error_median": {str(h): _median(np.where(sel[:, h - 1] & d[:, h - 1], er[:, h - 1], np.nan))
                                              for h in hs},
                }
                # How sharp the drawn ones are and how well they keep their outline: 1 = as the truth.
                for what, per in (looks or {}).items():
                    row[split][f"{what}_median_h1_{N}"] = _median(np.where(sel & d, per[o.kind][:, 1:], np.nan))
            out[o.kind] = row
        return out

    result: dict[str, Any] = {}
    for name in frames:
        c, tc = det["centroid"][name], det["truth_centroid"]
        drawn = {k: ~np.isnan(c[k][..., 0]) & vis[k] for k in vis}
        err = {k: np.linalg.norm(c[k] - tc[k], axis=-1) for k in vis}
        result[name] = summary(drawn, err, {"contrast": det["contrast"][name], "shape_iou": det["shape"][name]})
    # The oracle, in state space: drawn when within the object's radius of the true position.
    drawn, err = {}, {}
    for o in objs:
        pred = cv_oracle(o, 0)
        diff = pred - o.pos_view
        drawn[o.kind] = (np.linalg.norm(diff, axis=-1) <= o.radius) & vis[o.kind]
        err[o.kind] = np.linalg.norm(diff, axis=-1)
    result["cv_oracle"] = summary(drawn, err)

    # False objects: any of the episode's object colours drawn away from where the truth has it.
    colors = np.concatenate([o.color[:, 0] for o in objs], 1)  # (E, k, 3)
    false = {name: float(false_objects(f, truth[:, 1:], colors, slack).mean()) for name, f in frames.items()}
    wall = None if structure is None else np.asarray(structure, np.float32)  # the world's wall colour (priors)
    haze = {name: float(haze_objects(f, truth[:, 1:], colors, slack, structure=wall).mean()) for name, f in frames.items()}

    # Ball motion: velocities of the drawn centroids in world px against the state's finite differences.
    motion = None
    balls = next((o for o in objs if o.kind == "ball"), None)
    if balls is not None and balls.pos is not None and N >= 2:
        u = min(motion_upto, N)
        cam = balls.camera[:, :, None, :] if balls.camera is not None else 0.0
        v_state = np.diff(balls.pos[:, 1 : u + 1], axis=1)  # (E, u - 1, n, 2), pairs (h, h + 1), h = 1..u-1
        both = vis["ball"][:, 1:u] & vis["ball"][:, 2 : u + 1]

        def vel_err(cent: np.ndarray) -> np.ndarray:
            w = cent + cam
            return np.linalg.norm(np.diff(w[:, 1 : u + 1], axis=1) - v_state, axis=-1)  # (E, u - 1, n), NaN if lost

        floor_e = vel_err(det["truth_centroid"]["ball"])
        floor = float(np.nanmean(floor_e[both])) if both.any() else None
        motion = {"pairs": int(both.sum()), "horizon": u, "floor_px_per_step": floor}
        for name in frames:
            e_ = vel_err(det["centroid"][name]["ball"])
            ok = both & np.isfinite(e_)
            mean = float(e_[ok].mean()) if ok.any() else None
            motion[name] = {"error_px_per_step": mean, "x_floor": mean / floor if mean is not None and floor else None,
                            "tracked_share": float(ok.sum() / both.sum()) if both.any() else None}
    return {"scores": result, "false_objects": false, "haze_objects": haze, "ball_motion": motion, "follow": _follow(objs, det, vis, frames, spans),
            "kinds": [o.kind for o in objs],
            "settings": {"slack_px": slack, "false_tau": FALSE_TAU, "false_px": FALSE_PX, "haze_share": HAZE_SHARE, "haze_line": HAZE_LINE,
                         "haze_reach_px": HAZE_CELL * HAZE_REACH, "spans": spans,
                         "horizons": hs}}


def _follow(objs: list[Objects], det: dict[str, Any], vis: dict[str, np.ndarray], frames: dict[str, np.ndarray],
            spans: list[int]) -> dict[str, Any]:
    """Motion following per kind: over the steps where the object, as the true frames draw it (its detected
    centroid, in view at both ends), moves at least ``MOVE_PX``, the share where the drawn one moves at least
    ``FOLLOW_SHARE`` of that step along it (lost at either end: not followed). Pong's paddle under the keys,
    the arena's landmarks under the scroll. The true frames' centroid, not the state's position: Pong's
    paddle slides under the top wall where RAM still moves it and the screen does not (6 % of its moving
    steps on validation), and a move no frame shows is no move to follow; the truth then scores 100 %."""
    out: dict[str, Any] = {}
    for o in objs:
        k = o.kind
        step = np.diff(det["truth_centroid"][k], axis=1)  # (E, N, n, 2): the drawn move into frames 1..N; NaN: unseen
        mag = np.nan_to_num(np.linalg.norm(step, axis=-1), nan=0.0)  # (E, N, n)
        moving = (mag >= MOVE_PX) & vis[k][:, 1:] & vis[k][:, :-1]
        if not moving.any():
            continue
        unit = step / np.maximum(mag[..., None], 1e-6)
        row: dict[str, Any] = {"moving_steps": int(moving.sum())}
        for name in frames:
            along = (np.diff(det["centroid"][name][k], axis=1) * unit).sum(-1)  # (E, N, n); NaN: not drawn at an end
            hit = np.nan_to_num(along, nan=-np.inf) >= FOLLOW_SHARE * mag
            row[name] = {f"h1_{u}": _share(hit[:, :u] & moving[:, :u], moving[:, :u]) for u in spans}
        out[k] = row
    return out


__all__ = ["Objects", "objects_from_state", "detect", "false_objects", "haze_objects", "haze_tint", "dilate", "cv_oracle", "score_objects", "min_px", "SLACK"]
