"""Objects painted out of training frames: the window that lost a place memory still holds.

At a revisit, a model's own window has usually lost the landmarks of the place it returns to: in its
rollouts they fade within the window (landmark permanence h1-32 48 % on the arena's test set), while
its place memory holds the place's first, true view. A copy gate trained only on true windows never
meets that case: a clean window there always shows every landmark the target has, so the gate learns
to trust a clean-looking previous frame, and it opened 0.06 on landmark cells against 0.16 elsewhere on
the last frame of the arena's revisits (tools/revisit_frames.py, docs/BENCHMARKS.md, "Memory").
``DynamicsRecipe.memory_erase`` makes the case: in that share of the clips, the objects of one kind are
painted out of every frame but the last target, which keeps them, so they can only come from memory.

Measured with tools/memory_copy_probe.py ``--erase landmark`` (30 validation episodes, 115 landmarks in
view: one frame generated from a true window with its landmarks painted out, the true frame itself as the
memory frame): the memory stage trained without erasure draws 1.7 % of them, as many as with no memory.
Trained 300 steps with ``memory_erase`` 0.5 it draws 13.0 %; with the erased cells also weighed 20x
(``memory_erase_weight``: they are a few cells of one frame a clip) 73.9 %, and 63.5 % from the frame
place memory retrieves with the true pose (docs/BENCHMARKS.md, "Memory", twenty-fourth session).

Key choices:

- **Objects from the state's convention** (:func:`worldloom.eval.objects.objects_from_state`: every
  ``<kind>_pos_view`` with a radius and a colour), so any world whose objects the metrics score can be
  trained this way with no code of its own. Training may read the truth; nothing at run time does.
- **Painted out in pixels, then encoded** by the run's own tokenizer, so the erased latents are ones
  the tokenizer makes. An object's pixels are those of its colour (within ``TOL`` per channel) in its
  box; they are filled with the plane that fits the floor around the box (a ring 2-5 px beyond it,
  other objects' boxes left out; pixels far from the ring's median, then far from the first plane, such
  as a wall or a grid line, left out of the fit, or the fill comes out darker than the floor). On the
  arena's training frames a decal leaves only the grid line it crossed and, beside a wall, a faint patch.
- **Which latent cells held it** is kept per frame: a target cell that held an object the memory does
  not cover cannot be known, so the loss leaves it out (training/dynamics.py).
- **Faded as well as gone** (``DynamicsRecipe.memory_erase_fade``, off by default): a rollout's window shows a
  landmark half faded more often than gone. Erasing at a strength drawn from [0.25, 1] opened the arena memory
  stage's gate further where it keeps landmarks (0.82 against 0.60 over h17-32 of 60 validation rollouts) but
  not where it loses them (0.24 against 0.28), for +1.2 points of landmarks h1-32 (78.6 against 77.4 %), so no
  recipe uses it (docs/BENCHMARKS.md, "Memory", twenty-seventh session).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.format import Dataset
from ..models.vae import VAE


TOL = 24  # per-channel distance (0-255) from an object's colour that still counts as its pixel
RING = (2, 5)  # floor ring, px beyond the object's box: inner, outer
OUTLIER = (30.0, 6.0)  # floor pixels kept for the fill: within this of the median, then of the first plane


def erase_frame(frame: np.ndarray, pos: np.ndarray, radius: np.ndarray, color: np.ndarray,
                avoid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One frame (H, W, 3) uint8 with the objects at view positions ``pos`` (n, 2) px, radii (n,), colours
    (n, 3) painted out -> (the erased frame, its (H, W) bool mask of changed pixels). ``avoid`` (m, 3) holds
    (x, y, radius) of other objects whose pixels must not be taken for floor."""
    H, W, _ = frame.shape
    out = frame.copy()
    mask = np.zeros((H, W), bool)
    keep_out = np.concatenate([np.c_[pos, radius], avoid if avoid is not None else np.zeros((0, 3))], 0)
    for (cx, cy), r, col in zip(pos, radius, color):
        if not np.isfinite([cx, cy, r]).all():
            continue
        half = float(r) + 1
        y0, y1 = max(int(np.floor(cy - half)), 0), min(int(np.ceil(cy + half)) + 1, H)
        x0, x1 = max(int(np.floor(cx - half)), 0), min(int(np.ceil(cx + half)) + 1, W)
        if y0 >= y1 or x0 >= x1:
            continue  # out of view
        box = frame[y0:y1, x0:x1].astype(np.int16)
        hit = (np.abs(box - np.asarray(col, np.int16)) <= TOL).all(-1)  # (h, w)
        if not hit.any():
            continue
        ry0, ry1 = max(int(np.floor(cy - half - RING[1])), 0), min(int(np.ceil(cy + half + RING[1])) + 1, H)
        rx0, rx1 = max(int(np.floor(cx - half - RING[1])), 0), min(int(np.ceil(cx + half + RING[1])) + 1, W)
        yy, xx = np.mgrid[ry0:ry1, rx0:rx1]
        ring = np.maximum(np.abs(xx + 0.5 - cx), np.abs(yy + 0.5 - cy)) > half + RING[0]
        for ox, oy, orad in keep_out:  # other objects (and this one) are not floor
            ring &= np.maximum(np.abs(xx + 0.5 - ox), np.abs(yy + 0.5 - oy)) > orad + 1
        if ring.sum() < 6:
            continue  # no floor to fill from: leave it
        coef = _floor_plane(xx[ring], yy[ring], frame[ry0:ry1, rx0:rx1][ring].astype(np.float64))
        hy, hx = np.nonzero(hit)
        fill = np.c_[np.ones(len(hy)), hx + x0, hy + y0] @ coef  # (p, 3)
        out[hy + y0, hx + x0] = np.clip(np.rint(fill), 0, 255).astype(np.uint8)
        mask[hy + y0, hx + x0] = True
    return out, mask


def _floor_plane(x: np.ndarray, y: np.ndarray, px: np.ndarray) -> np.ndarray:
    """The plane a + b x + c y (coefficients (3, 3), one column per channel) through the floor pixels ``px``
    (k, 3) at ``x``, ``y`` (k,), robustly: pixels far from the median (a wall) go first, then those the
    first fit leaves far off (grid lines, edges), which would tint the fill."""
    keep = np.abs(px - np.median(px, 0)).max(-1) <= OUTLIER[0]
    if keep.sum() < 3:
        keep[:] = True
    A = np.c_[np.ones(len(x)), x, y]  # (k, 3)
    coef, *_ = np.linalg.lstsq(A[keep], px[keep], rcond=None)
    near = np.abs(A @ coef - px).max(-1) <= OUTLIER[1]
    if near.sum() >= 3:
        coef, *_ = np.linalg.lstsq(A[near], px[near], rcond=None)
    return coef


def erase_episode(frames: np.ndarray, state: dict[str, np.ndarray], kind: str,
                  where: str = "episode") -> tuple[np.ndarray, np.ndarray]:
    """An episode's frames (T, H, W, 3) uint8 with every object of ``kind`` painted out -> (erased frames,
    (T, H, W) bool masks of the pixels changed). Raises naming ``where`` and the missing key if the state
    does not report that kind."""
    from ..eval.objects import episode_objects, objects_from_state

    o = episode_objects(state, kind, where)
    others = [x for x in objects_from_state({k: np.asarray(v)[None] for k, v in state.items()}) if x.kind != kind]
    T = len(frames)
    if o.pos_view.shape[1] != T:
        raise ValueError(f"{where}: state {kind}_pos_view has {o.pos_view.shape[1]} steps for {T} frames")
    out, masks = np.empty_like(frames), np.zeros(frames.shape[:3], bool)
    for t in range(T):
        avoid = np.concatenate([np.c_[x.pos_view[0, t], x.radius[0, t]] for x in others], 0) if others else None
        out[t], masks[t] = erase_frame(frames[t], o.pos_view[0, t], o.radius[0, t], o.color[0, t], avoid)
    return out, masks


def cell_masks(masks: np.ndarray, latent_size: int) -> torch.Tensor:
    """Pixel masks (T, H, W) bool -> (T, h, w) bool latent cells that hold any changed pixel."""
    T, H, W = masks.shape
    f = H // latent_size
    return torch.from_numpy(masks.reshape(T, latent_size, f, latent_size, f).any(axis=(2, 4)))


@torch.no_grad()
def erased_latents(vae: VAE, ds: Dataset, latents: list[Any], kind: str, where: str,
                   batch: int = 256) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every episode's latents (T, C, h, w) with the objects of ``kind`` painted out of its frames, and the
    (T, h, w) bool latent cells each erasure touched. Frames it leaves untouched keep their latents from
    ``latents`` (the run's own, in memory or cached) instead of being encoded again."""
    from .latents import clip

    lat, cells = [], []
    for i, ep in enumerate(ds):
        frames = np.asarray(ep.frames)
        er, masks = erase_episode(frames, ep.state, kind, f"{where}: episode {i}")
        z = clip(latents[i], 0, len(frames)).clone()  # (T, C, h, w)
        idx = np.nonzero(masks.any(axis=(1, 2)))[0]
        for j in range(0, len(idx), batch):
            sel = idx[j: j + batch]
            z[torch.from_numpy(sel)] = vae.encode(torch.from_numpy(er[sel])).float()
        lat.append(z)
        cells.append(cell_masks(masks, vae.cfg.latent_size))
    return lat, cells


@dataclass
class ErasedClips:
    """A batch's clips with the objects painted out (what ``DynamicsRecipe.memory_erase`` draws from)."""

    z: torch.Tensor = field(metadata={"doc": "(B, T, C, h, w) erased latents of each clip"})
    cells: torch.Tensor = field(metadata={"doc": "(B, T, h, w) bool: latent cells an erasure touched"})


def erase_clips(x0: torch.Tensor, erased: ErasedClips, cover: torch.Tensor, share: float, gen: torch.Generator,
                weight: float = 1.0, fade: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Clean clips x0 (B, T, C, h, w) -> (clips whose frames before the last are the erased ones in a ``share``
    of them, loss weights (B, T, h, w), the share of clips changed). The last target keeps its objects; its
    cells that held one its memory frames do not cover (``cover`` (B, 1, h, w), where the model places them:
    ``models.mem_copy.align``) weigh 0, since nothing the model sees tells it what was there, and those they
    cover weigh ``weight``. With ``fade`` < 1 each changed clip takes the erased latents at a strength drawn
    uniformly from [fade, 1] (x0 + s (erased - x0)): a faded object, as a rollout's window shows, not only none."""
    B, T = x0.shape[:2]
    pick = (torch.rand(B, generator=gen) < share).to(x0.device)  # (B,)
    changed = pick & erased.cells[:, :-1].flatten(1).any(1).to(x0.device)  # (B,): a clip with nothing erased is as it was
    faded = erased.z[:, :-1].to(x0.device)  # (B, T - 1, C, h, w)
    if fade < 1.0:  # a strength for every clip, so the generator advances alike whichever are changed
        strength = (fade + (1.0 - fade) * torch.rand(B, generator=gen)).to(x0.device)[:, None, None, None, None]
        faded = x0[:, :-1] + strength * (faded - x0[:, :-1])
    head = torch.where(changed[:, None, None, None, None], faded, x0[:, :-1])
    out = torch.cat([head, x0[:, -1:]], 1)
    w = torch.ones((B, T, *x0.shape[-2:]), device=x0.device)
    held = erased.cells[:, -1].to(x0.device) & changed[:, None, None]  # (B, h, w)
    w[:, -1] = torch.where(held, torch.where(cover[:, 0] > 0, weight, 0.0), 1.0)
    return out, w, float(changed.float().mean())
