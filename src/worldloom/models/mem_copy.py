"""Copying a revisited place from memory: the placed memory frame as a second base for the new frame.

A DiT that sees its memory frames only as tokens does not copy from them. Given the true frame it is
about to make as a memory frame, at the right placement, the shipped arena's one-step frame gains
0.01 dB, and so does a student trained 100 steps with place memory; 300 steps with the window's context
noised heavily in half the clips raise that to 0.27 dB (tools/memory_copy_probe.py, docs/BENCHMARKS.md,
"Memory"). A 16-token frame would have to rebuild 4x4 latent cells of detail per token from attention.

So a model with ``DynamicsConfig.mem_copy`` gets a direct path. Its memory frames, moved by their
placement to the previous frame's view in whole latent cells (:func:`align`), form a second base beside
the previous frame. A per-cell gate (a :class:`~worldloom.models.layers.ConvRefiner` that sees both bases,
where memory covers the view, the head's output and the frame's conditioning) blends the two, and the
head's flow then warps the blend to the new frame as it warps the previous frame alone
(``x0 = out + warp(prev + g (mem - prev), flow)``). A static place can then be copied cell for cell
while a moving ball still comes from the previous frame. The gate starts at sigmoid(-6) = 0.25 %, so a
trained model grown with it plays almost exactly as before (training/init.py: GROWABLE).

The gate is new beside a trunk that has trained for thousands of steps, and a few hundred steps at the trunk's
learning rate move it as one: on the arena it opened 0.34 wherever memory covered, 0.32 on the cells of a ball that
has moved since the memory frame and 0.38 on a landmark the window lost, so what stopped it copying the ball stopped
it copying the landmark. Trained at 30x (``TrainConfig.lr_scale_prefix = "mem_copy."``) it opens 0.38 on the moved
ball and 0.79 on the lost landmark, and draws 86 % of those landmarks against 29 % (tools/memory_copy_probe.py;
docs/BENCHMARKS.md, "Memory", twenty-sixth session).

Only the newest frame of a pass gets the memory base: the placement is measured from the frame before
it (the policy's pose, or the training clip's query frame), so it is exact for that frame alone.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .layers import ConvRefiner

GATE_SHIFT = 6.0  # the gate's logit offset: sigmoid(0 - 6) = 0.25 % memory at the start


def align(z: torch.Tensor, offset: torch.Tensor, valid: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Memory latents z (B, M, C, h, w) placed at ``offset`` (B, M, 2) tokens (rows, cols), ``valid`` (B, M) ->
    the memory base (B, C, h, w) in the current view, each cell from the first valid slot covering it, and
    ``cover`` (B, 1, h, w): 1 where a slot does. Offsets round to whole latent cells (``patch`` per token)."""
    B, M, C, h, w = z.shape
    base, cover = z.new_zeros((B, C, h, w)), z.new_zeros((B, 1, h, w))
    d = torch.round(offset.double() * patch).long().tolist()  # (B, M, 2) cells
    ok = valid.tolist()
    for b in range(B):
        for m in range(M):
            if not ok[b][m]:
                continue
            dr, dc = d[b][m]  # memory cell (i, j) lies at (i + dr, j + dc) in the current view
            r0, r1, c0, c1 = max(0, dr), min(h, h + dr), max(0, dc), min(w, w + dc)
            if r0 >= r1 or c0 >= c1:
                continue
            free = cover[b, :, r0:r1, c0:c1] == 0  # (1, hh, ww): a slot earlier in the list wins
            src = z[b, m, :, r0 - dr: r1 - dr, c0 - dc: c1 - dc]
            base[b, :, r0:r1, c0:c1] = torch.where(free, src, base[b, :, r0:r1, c0:c1])
            cover[b, :, r0:r1, c0:c1] = 1.0
    return base, cover


def newest_only(base: torch.Tensor, cover: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A pass's memory base (B, F, C, h, w) and cover (B, F, 1, h, w): ``base`` (B, C, h, w) for its newest
    frame, nothing covered for the ``frames - 1`` before it."""
    B = base.shape[0]
    mb = base.new_zeros((B, frames, *base.shape[1:]))
    cv = cover.new_zeros((B, frames, *cover.shape[1:]))
    mb[:, -1], cv[:, -1] = base, cover
    return mb, cv


class MemoryCopy(nn.Module):
    """The gate between the previous frame and the placed memory frame, per latent cell."""

    def __init__(self, channels: int, cond_dim: int, width: int = 32) -> None:
        super().__init__()
        self.gate = ConvRefiner(3 * channels + 1, 1, width, cond_dim)
        self.last_gate: torch.Tensor | None = None  # (B, F, 1, h, w) of the last pass, for probes

    def forward(self, prev: torch.Tensor, mem: torch.Tensor, cover: torch.Tensor, out: torch.Tensor,
                cond: torch.Tensor) -> torch.Tensor:
        """prev, mem, out (B, F, C, h, w), cover (B, F, 1, h, w), cond (B, F, D) -> the blended base (B, F, C, h, w)."""
        w = self.gate.inp.weight
        logit = self.gate(torch.cat([prev, mem, cover, out], 2).to(w.dtype), cond.to(w.dtype)).float()
        g = torch.sigmoid(logit - GATE_SHIFT) * cover  # (B, F, 1, h, w): no memory where none covers
        self.last_gate = g.detach()
        return prev + g * (mem - prev)
