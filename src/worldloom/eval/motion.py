"""View motion from frames alone: masked block matching, and the action-following score built on it.

In the arena the camera follows the agent, so an action shows up mostly as the whole background
scrolling. Estimating that scroll from a pair of frames (generated or true) and comparing it with the
true camera motion measures whether a world model follows its actions, without trusting the model.

Sign convention: ``(dx, dy)`` is the camera motion, the same sign as ``camera[t] - camera[t-1]``.
A camera moving right by 4 px scrolls the background left, so ``cur[y, x] == prev[y + dy, x + dx]``
with ``(dx, dy) = (+4, 0)``. x is right, y is down.

Key choices (measured on arena datasets of the momentum and random policies, ~14k pairs):

- **Intensity = mean of R, G, B.** The balls are saturated hues whose channel mean is close to the
  floor's, so they nearly vanish, while the floor's grid lines and decals do not. Matching RGB got
  96.0 % of the true shifts (a moving ball pulls the match towards its own motion); the channel mean
  gets 99.9 %, and 100 % with boxes around the true balls masked too (:func:`box_mask`; not
  possible on generated frames, so not the default). Not centred per frame: content scrolling in (the dark band beyond the walls) changes a
  frame's mean legitimately, and removing it made 16 px (grid period) aliases win: 99.5 %.
- **Masked, normalised SSD by FFT.** The mean squared difference over the overlap of the two frames,
  excluding masked pixels of either, for every integer shift in ``[-max_shift, max_shift]^2``, is
  ``(corr(w c^2, w) + corr(w, w p^2) - 2 corr(w c, w p)) / corr(w, w)``: four cross-correlations,
  i.e. a few zero-padded FFTs per frame instead of ~625 shifted differences: 50 x 32 pairs take
  ~0.6 s on one busy CPU core.
  Spectra of a sequence's frames are computed once and shared by the two pairs each frame is in.
- **The agent's box is masked** where the env states one (its ``agent_half_px`` prior,
  :func:`worldloom.envs.registry.priors`; the arena: 9 px, its agent sprite of radius 5 within +-2 px
  of the view centre), which stays put while the background scrolls and would vote for "no motion".
  Callers pass it as ``mask``; None masks nothing.
- **Ties go to the smallest shift.** A tiny penalty ``1e-4 * (dx^2 + dy^2)`` (in grey levels^2;
  real mismatches cost > 1) makes a flat or frozen frame read as (0, 0), i.e. *no* motion, so a model
  that stops moving or blurs everything out scores a miss, never a lucky hit. Shifts whose overlap is
  under a quarter of the best-covered shift's are not considered.
- **Blur.** Frames blurred alike still match well (5 px box blur on both: 99.5 % right direction),
  but a change of sharpness inside a pair hurts (sharp -> 5 px blurred: 88 %). A low-pass pre-filter
  would fix that (sigma 1.5: 97 %) but weakens the 1 px grid lines against the balls, dropping true
  frames to 97.5 %; not used. So pair frames of like sharpness (e.g. decoded with decoded).
- **Action following counts moving steps only.** A hit needs the estimate to have the true sign on
  both axes: zero estimated motion on a moving axis is a miss, and an axis with no true motion must
  be estimated zero. Exact match (estimate == true shift) and still-step agreement are kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..shift import MAX_SHIFT, argmin_shift, central_mask, check_shift, costs, fft_size, spectra, warp

_CHUNK = 1024  # frames per FFT batch: bounds memory on long inputs


def box_mask(size: tuple[int, int], centres: np.ndarray, half: int = 7, base: np.ndarray | None = None) -> np.ndarray:
    """Mask boxes around points: centres (..., k, 2) as (x, y) view px -> bool (..., H, W), True = excluded.

    ``base`` (H, W), e.g. :func:`central_mask`, is OR-ed in. Use it to also exclude objects whose
    positions are known (the balls of true frames); pass the union of both frames' boxes.
    """
    H, W = size
    c = np.floor(np.asarray(centres, np.float64))[..., None, None, :]  # (..., k, 1, 1, 2)
    ys, xs = np.arange(H)[:, None], np.arange(W)[None, :]
    inside = (np.abs(xs - c[..., 0]) <= half) & (np.abs(ys - c[..., 1]) <= half)  # (..., k, H, W)
    m = inside.any(axis=-3)
    return m | base if base is not None else m


def _weights(mask: np.ndarray | None, shape: tuple[int, ...]) -> torch.Tensor:
    """Per-frame weights (..., H, W) float32 (1 = used) for frames of ``shape`` (..., H, W, 3)."""
    H, W = shape[-3:-1]
    m = np.zeros((H, W), bool) if mask is None else np.asarray(mask, bool)
    if m.shape[-2:] != (H, W):
        raise ValueError(f"mask must end in ({H}, {W}) like the frames, got {m.shape}")
    return torch.from_numpy(np.broadcast_to(~m, (*shape[:-3], H, W)).astype(np.float32))


def _spectra(frames: np.ndarray, w: torch.Tensor, P: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`~worldloom.shift.spectra` of uint8 frames (N, H, W, 3)."""
    return spectra(torch.from_numpy(np.asarray(frames)).float().mean(-1) - 127.5, w, P)


def _argmin_shift(c: torch.Tensor, m: int) -> np.ndarray:
    return argmin_shift(c, m).numpy().astype(np.int64)


@torch.inference_mode()
def shift_costs(
    prev: np.ndarray, cur: np.ndarray, mask: np.ndarray | None = None, max_shift: int = MAX_SHIFT
) -> np.ndarray:
    """Masked mean squared difference for every shift: (..., 2m+1, 2m+1) float32, indexed [dy+m, dx+m].

    prev, cur: uint8 (..., H, W, 3). mask: bool (H, W) or (..., H, W), True = excluded (in both
    frames), e.g. :func:`central_mask` with the env's ``agent_half_px``; None = no mask. Entry (dy, dx)
    compares ``cur[y, x]`` with ``prev[y+dy, x+dx]``.
    """
    prev, cur = np.asarray(prev), np.asarray(cur)
    if prev.shape != cur.shape or prev.ndim < 3 or prev.shape[-1] != 3:
        raise ValueError(f"prev and cur must both be (..., H, W, 3), got {prev.shape} and {cur.shape}")
    H, W = prev.shape[-3:-1]
    m = check_shift(max_shift, H, W)
    lead = prev.shape[:-3]
    P = fft_size(max(H, W) + m)
    p2, c2 = prev.reshape(-1, H, W, 3), cur.reshape(-1, H, W, 3)
    w = _weights(mask, prev.shape).reshape(-1, H, W)
    out = []
    for i in range(0, len(p2), _CHUNK):
        j = i + _CHUNK
        out.append(costs(_spectra(p2[i:j], w[i:j], P), _spectra(c2[i:j], w[i:j], P), P, m))
    c = torch.cat(out) if out else torch.zeros((0, 2 * m + 1, 2 * m + 1))
    return c.numpy().reshape(*lead, 2 * m + 1, 2 * m + 1)


def estimate_shift(
    prev: np.ndarray, cur: np.ndarray, mask: np.ndarray | None = None, max_shift: int = MAX_SHIFT
) -> np.ndarray:
    """Camera motion between frame pairs: int64 (..., 2) as (dx, dy); a single pair gives ``(2,)``.

    ``cur[y, x] ~= prev[y + dy, x + dx]``: same sign as ``camera[t] - camera[t-1]`` (see module doc).
    """
    c = torch.from_numpy(shift_costs(prev, cur, mask, max_shift))
    m = int(max_shift)
    return _argmin_shift(c.reshape(-1, 2 * m + 1, 2 * m + 1), m).reshape(*c.shape[:-2], 2)


@torch.inference_mode()
def estimate_motion(frames: np.ndarray, mask: np.ndarray | None = None, max_shift: int = MAX_SHIFT) -> np.ndarray:
    """Camera motion between consecutive frames: uint8 (..., T, H, W, 3) -> int64 (..., T-1, 2) (dx, dy).

    mask: bool (H, W), or per frame (..., T, H, W); True = excluded. Equals ``estimate_shift`` on
    ``(frames[..., :-1], frames[..., 1:])`` but transforms each frame once.
    """
    frames = np.asarray(frames)
    if frames.ndim < 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (..., T, H, W, 3), got {frames.shape}")
    *lead, T, H, W, _ = frames.shape
    m = check_shift(max_shift, H, W)
    P = fft_size(max(H, W) + m)
    seqs = frames.reshape(-1, T, H, W, 3)
    w = _weights(mask, frames.shape).reshape(-1, T, H, W)
    per = max(1, _CHUNK // max(T, 1))  # sequences per FFT batch
    out = []
    for i in range(0, len(seqs), per):
        s = seqs[i : i + per]
        n = len(s)
        sp = _spectra(s.reshape(-1, H, W, 3), w[i : i + n].reshape(-1, H, W), P)
        sp = tuple(x.reshape(n, T, *x.shape[1:]) for x in sp)  # (n, T, P, P//2+1)
        prev = tuple(x[:, :-1].reshape(-1, *x.shape[2:]) for x in sp)
        cur = tuple(x[:, 1:].reshape(-1, *x.shape[2:]) for x in sp)
        out.append(_argmin_shift(costs(prev, cur, P, m), m).reshape(n, T - 1, 2))
    est = np.concatenate(out) if out else np.zeros((0, max(T - 1, 0), 2), np.int64)
    return est.reshape(*lead, max(T - 1, 0), 2)


TRANSITIONS = ("steady", "onset", "turn", "stop", "still")
"""Kinds of step, by the true camera motion into it (c) and into the step before (p): ``steady`` c and p
move the same way; ``onset`` c moves, p did not; ``turn`` both move, some axis changed sign; ``stop`` c
still, p moved; ``still`` neither moved. Moving kinds are scored by direction hits, still ones by
(0, 0) estimates."""


def transition_kinds(true: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Index into :data:`TRANSITIONS` per step: true (B, N, 2) motion, prev (B, 2) motion before step 1."""
    p = np.concatenate([np.asarray(prev)[:, None], true[:, :-1]], axis=1)  # (B, N, 2) motion one step earlier
    cm, pm = (true != 0).any(-1), (p != 0).any(-1)
    same = (np.sign(true) == np.sign(p)).all(-1)
    return np.select([cm & pm & same, cm & ~pm, cm & pm, pm], [0, 1, 2, 3], default=4)


@dataclass
class FollowResult:
    """Per-step motion estimates vs truth; arrays are (B, N, ...) over the N scored steps."""

    est: np.ndarray
    """int64 (B, N, 2): estimated camera motion (dx, dy) into each step's frame."""
    true: np.ndarray
    """int64 (B, N, 2): true camera motion."""
    prev: np.ndarray | None = None
    """int64 (B, 2): true camera motion into the step before the first scored one (for :meth:`by_transition`)."""

    @property
    def moving(self) -> np.ndarray:
        """bool (B, N): steps where the true camera moved."""
        return (self.true != 0).any(-1)

    @property
    def hit(self) -> np.ndarray:
        """bool (B, N): estimated direction right on both axes (0 on a still axis, same sign on a moving one)."""
        return (np.sign(self.est) == np.sign(self.true)).all(-1)

    @property
    def exact(self) -> np.ndarray:
        """bool (B, N): estimate equals the true shift."""
        return (self.est == self.true).all(-1)

    def rate(self, kind: str = "hit", upto: int | None = None, start: int = 1) -> float:
        """Fraction of moving steps in horizons ``start..upto`` (1-based, inclusive) that are ``kind``.

        kind: ``"hit"`` or ``"exact"`` (over moving steps) or ``"still"`` (estimate (0, 0) over steps
        where the camera did not move). NaN when no step qualifies.
        """
        sel = slice(start - 1, upto)
        if kind == "still":
            ok, where = (self.est == 0).all(-1), ~self.moving
        elif kind in ("hit", "exact"):
            ok, where = getattr(self, kind), self.moving
        else:
            raise ValueError(f"kind must be 'hit', 'exact' or 'still', got {kind!r}")
        ok, where = ok[:, sel], where[:, sel]
        n = int(where.sum())
        return float((ok & where).sum() / n) if n else float("nan")

    def per_step(self, kind: str = "hit") -> np.ndarray:
        """(N,) rate at each horizon over the batch (NaN where nothing moved)."""
        return np.array([self.rate(kind, h, h) for h in range(1, self.est.shape[1] + 1)])

    def by_transition(self, upto: int | None = None) -> dict[str, dict[str, float | int]]:
        """Per kind of step (:data:`TRANSITIONS`) over horizons 1..upto: ``{kind: {"n", "rate"}}``,
        rate = direction hits on moving kinds, (0, 0) estimates on still ones (NaN where n is 0).

        Where a model loses following is rarely uniform: steady motion is easy, the step where motion
        starts, turns or stops needs the agent's sub-cell position and velocity from past frames.
        """
        if self.prev is None:
            raise ValueError("by_transition needs the true motion before the first step (FollowResult.prev)")
        kind = transition_kinds(self.true, self.prev)[:, :upto]
        ok = np.where((self.true != 0).any(-1), self.hit, (self.est == 0).all(-1))[:, :upto]
        out: dict[str, dict[str, float | int]] = {}
        for i, name in enumerate(TRANSITIONS):
            n = int((kind == i).sum())
            out[name] = {"n": n, "rate": float(ok[kind == i].mean()) if n else float("nan")}
        return out

    def summary(self, horizons: tuple[int, ...] = (8, 32)) -> dict[str, float | int]:
        """JSON-ready rates over horizons 1..h (clipped to the scored steps): h1_8, exact_h1_8, ..."""
        out: dict[str, float | int] = {}
        for h in horizons:
            out[f"h1_{h}"] = self.rate("hit", h)
            out[f"exact_h1_{h}"] = self.rate("exact", h)
            out[f"still_h1_{h}"] = self.rate("still", h)
            out[f"n_moving_h1_{h}"] = int(self.moving[:, :h].sum())
        return out


def action_following(
    frames: np.ndarray,
    true_camera: np.ndarray,
    context_last_frame: np.ndarray | None = None,
    *,
    prev_motion: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    max_shift: int = MAX_SHIFT,
) -> FollowResult:
    """Score whether frames move like the true camera.

    Args:
        frames: uint8 (B, N, H, W, 3), e.g. generated steps 1..N.
        true_camera: (B, N+1, 2) true camera offsets (x, y) of [last context frame, steps 1..N]; or
            (B, N, 2) when ``context_last_frame`` is None (then ``frames[:, 0]`` is the predecessor
            and N-1 steps are scored).
        context_last_frame: uint8 (B, H, W, 3), the frame before ``frames[:, 0]``.
        prev_motion: (B, 2) true camera motion into the predecessor frame, for :meth:`FollowResult.by_transition`.
        mask, max_shift: as in :func:`estimate_shift`.

    Returns:
        A :class:`FollowResult` over the scored steps (step index 0 = horizon 1).
    """
    frames = np.asarray(frames)
    if frames.ndim != 5:
        raise ValueError(f"frames must be (B, N, H, W, 3), got {frames.shape}")
    if context_last_frame is not None:
        frames = np.concatenate([np.asarray(context_last_frame)[:, None], frames], axis=1)
    cam = np.rint(np.asarray(true_camera, np.float64)).astype(np.int64)
    if cam.shape != (*frames.shape[:2], 2):
        raise ValueError(f"true_camera must be {(*frames.shape[:2], 2)} (one offset per frame incl. the "
                         f"predecessor), got {cam.shape}")
    prev = None if prev_motion is None else np.rint(np.asarray(prev_motion, np.float64)).astype(np.int64)
    return FollowResult(est=estimate_motion(frames, mask, max_shift), true=np.diff(cam, axis=1), prev=prev)


def shift_view(frames: np.ndarray, motion: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Frames (..., H, W, C) moved as a camera moving by ``motion`` (..., 2) = (dx, dy) px would see them.

    ``out[y, x] = frame[y + dy, x + dx]``; pixels that scroll in repeat the nearest edge pixel; pixels
    where ``keep`` (H, W) is True stay as they were (e.g. :func:`central_mask`: the agent the camera
    follows). Applied to the last context frame with the true camera motion and the central mask, it
    is the *oracle-motion* baseline: what a model that moves the view perfectly and knows nothing
    else (content scrolling in, balls) would draw. Keeping the agent put matters: on true arena
    frames the moved frame scores 21.7 dB with the sprite moved too, 26.2 dB with it kept.
    """
    frames, motion = np.asarray(frames), np.rint(np.asarray(motion)).astype(np.int64)
    H, W, C = frames.shape[-3:]
    lead = frames.shape[:-3]
    f = np.ascontiguousarray(frames.reshape(-1, H, W, C))  # (n, H, W, C)
    m = torch.from_numpy(np.array(np.broadcast_to(motion, (*lead, 2)).reshape(-1, 2)))
    out = warp(torch.from_numpy(f).permute(0, 3, 1, 2), m).permute(0, 2, 3, 1).numpy()  # (n, H, W, C)
    if keep is not None:
        out[:, keep] = f[:, keep]
    return out.reshape(frames.shape)


__all__ = [
    "MAX_SHIFT", "TRANSITIONS", "FollowResult", "action_following", "box_mask", "central_mask",
    "estimate_motion", "estimate_shift", "shift_costs", "shift_view", "transition_kinds",
]
