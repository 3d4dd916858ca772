"""Ghosts: what a memory frame still shows of an object that has since moved, which memory must not copy back.

A place memory frame is a past view. Its landmarks are where they were; its balls are where they *were*. A
copy gate trained to bring back the landmarks a rollout's window lost (``DynamicsRecipe.memory_erase``,
training/erase.py: those cells weigh 20x) copied balls that had rolled away as readily: an object-coloured
blob on 11.5-14.6 % of the arena's revisit frames against 0-4.2 % for the model trained without erasure
(docs/BENCHMARKS.md, "Memory", twenty-fourth session). In the erasure clips the window has lost the landmark
and memory shows it; at a ghost the window has no ball and memory shows one: the same picture, told apart
only by what kind of object it is, and the first is weighed 20x while the second weighs 1.

``DynamicsRecipe.memory_ghost_weight`` weighs the second up too: the last target's cells where a placed memory
frame shows an object of ``memory_ghost_kind`` and the target has none there. Training may read the truth
(the state's ``<kind>_pos_view`` and ``_radius``, the object metrics' convention); nothing at run time does.
The broader rule, every cell where the placed memory disagrees with the frame before the target
(training/memory.stale_cells), also takes misplaced frames and the floor, and cost a quarter of the
landmarks brought back.

Measured with tools/memory_copy_probe.py ``--ghost ball --min-age 48`` (60 validation episodes, 78 starts: one
frame generated from a clean true window, with a place memory frame at least 48 frames old placed exactly), on
the memory stage (docs/BENCHMARKS.md, "Memory", twenty-fifth session): trained without it, the model draws a ball
where the target has none in 10.3 % of frames, and the memory frame costs 3.9 dB against none (30.41 against
34.27 dB), its gate open 0.55 wherever memory covers; weight 5: 7.7 %, 31.17 dB; weight 20: 0.0 %, 32.18 dB, gate
0.34.

Key choices:

- **Cells from geometry, not pixels**: a latent cell holds the object if the disc of its radius reaches the
  cell's box, so a ball at a cell's edge marks both cells.
- **Placed as the gate places them** (``models.mem_copy.align``, the first valid slot covering a cell), then grown
  by one cell, since the head's flow moves the copied base by up to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..models.mem_copy import align


def object_cells(state: dict[str, Any], kind: str, n_frames: int, frame_size: int, latent_size: int,
                 where: str = "episode") -> torch.Tensor:
    """(T, h, w) bool: the latent cells any object of ``kind`` touches in each of an episode's ``n_frames``,
    from its state's view positions (px) and radii. Raises naming ``where`` if the state lacks the kind."""
    from ..eval.objects import episode_objects

    o = episode_objects(state, kind, where)
    pos, rad = o.pos_view[0], o.radius[0]  # (T, n, 2) px, (T, n)
    if pos.shape[0] != n_frames:
        raise ValueError(f"{where}: state {kind}_pos_view has {pos.shape[0]} steps for {n_frames} frames")
    f = frame_size / latent_size
    lo = np.arange(latent_size) * f  # (h,) each cell's first px; it spans [lo, lo + f)
    # the nearest point of each cell's box to each centre, per axis: (T, n, h)
    dx = np.clip(pos[..., 0:1], lo, lo + f) - pos[..., 0:1]
    dy = np.clip(pos[..., 1:2], lo, lo + f) - pos[..., 1:2]
    d2 = dy[..., :, None] ** 2 + dx[..., None, :] ** 2  # (T, n, h, w)
    hit = d2 <= (rad[..., None, None] ** 2)  # NaN positions (out of the world) touch nothing
    return torch.from_numpy(hit.any(1))


@dataclass
class GhostMarks:
    """Where a batch's memory frames and last targets hold the watched kind of object."""

    memory: torch.Tensor = field(metadata={"doc": "(B, M, h, w) bool: cells holding one in each memory frame, its own view"})
    target: torch.Tensor = field(metadata={"doc": "(B, h, w) bool: cells holding one in each clip's last target"})


def ghost_marks(cells: list[torch.Tensor], picks: list[tuple[int, int]], index: torch.Tensor, clip_len: int) -> GhostMarks:
    """The marks of clips ``picks`` [(episode, start)] whose memory slots hold frames ``index`` (B, M) (-1: empty),
    from each episode's object cells (T, h, w)."""
    h, w = cells[0].shape[1:]
    B, M = index.shape
    mem = torch.zeros((B, M, h, w), dtype=torch.bool)
    for b, (e, _) in enumerate(picks):
        for m, c in enumerate(index[b].tolist()):
            if c >= 0:
                mem[b, m] = cells[e][c]
    target = torch.stack([cells[e][s + clip_len - 1] for e, s in picks])
    return GhostMarks(mem, target)


def ghost_cells(marks: GhostMarks, offset: torch.Tensor, valid: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, h, w) bool: the cells of the current view where the placed memory (``offset`` (B, M, 2) tokens,
    ``valid`` (B, M)) shows the object and the last target does not."""
    placed, _ = align(marks.memory[:, :, None].float(), offset, valid, patch)  # (B, 1, h, w)
    grown = F.max_pool2d(placed, 3, 1, 1)[:, 0] > 0
    return grown & ~marks.target


def weigh_last(mask: torch.Tensor | None, cells: torch.Tensor, weight: float, x0: torch.Tensor) -> torch.Tensor:
    """Loss weights (B, T, h, w) (``mask``, or all 1 if None) with the last target's ``cells`` (B, h, w) set to
    ``weight`` where no rule before set them."""
    mask = torch.ones(x0.shape[:2] + x0.shape[-2:], device=x0.device) if mask is None else mask
    cells = cells.to(mask.device)
    mask[:, -1] = torch.where(cells & (mask[:, -1] == 1), torch.full_like(mask[:, -1], weight), mask[:, -1])
    return mask
