"""Long-term memory frames in the dynamics DiT: what they are and how the model attends to them.

Memory frames are encoded on their own: each attends only to itself (no previous frame, "no action", its
noise level), so its keys do not depend on where it is placed: RoPE scores inside one frame see only
relative positions. A bank entry is therefore encoded once, at time 0 and no offset, and moved to any
placement later by one extra rotation of its keys (:meth:`MemoryAttention.place_memory`); the uncached
pass, which encodes memory in place (:meth:`MemoryAttention._with_memory`), gives the same numbers
(tests/models/test_dit.py). Which frames a step sees is the context policy's choice (``worldloom.memory``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .layers import apply_rope

if TYPE_CHECKING:
    import torch.nn as nn

    from .layers import Rope3D


@dataclass
class MemoryFrames:
    """Long-term memory frames in front of a clip (uncached pass): what its targets see besides the window."""

    z: torch.Tensor = field(metadata={"doc": "(B, M, C, h, w) memory latents"})
    t: torch.Tensor = field(metadata={"doc": "(B, M) noise levels they are encoded at (context noise)"})
    time: torch.Tensor = field(metadata={"doc": "(B, M) time positions, on the clip's frame axis"})
    offset: torch.Tensor = field(metadata={"doc": "(B, M, 2) spatial placement (rows, cols) in tokens"})
    valid: torch.Tensor = field(metadata={"doc": "(B, M) bool: which slots hold a frame"})


class MemoryAttention:
    """The memory-frame half of :class:`~worldloom.models.dit.CausalDiT` (a mixin: it uses the model's
    tokenizer, conditioning, RoPE and blocks)."""

    cfg: Any
    rope: Rope3D
    blocks: nn.ModuleList
    no_action: int

    def _memory_inputs(self, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, M, N, D) and conditioning (B, M, D) of memory latents z (B, M, C, h, w) at noise t (B, M):
        no previous frame, 'no action' (axes at their centre)."""
        B, M = t.shape
        a = torch.full((B, M), self.no_action, dtype=torch.long, device=z.device)
        ax = z.new_zeros((B, M, self.cfg.n_axes)) if self.cfg.n_axes else None
        return self._tokens(z, None), self._cond(t, a, ax)

    def _own_frame_mask(self, m: int, device: torch.device) -> torch.Tensor:
        f = torch.arange(m, device=device).repeat_interleave(self.cfg.n_tok)
        return f[:, None] == f[None, :]  # (m*N, m*N)

    def _with_memory(self, h: torch.Tensor, cond: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor,
                     memory: MemoryFrames, T: int) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Append memory frames to an uncached pass: tokens, conditioning, per-row RoPE tables and a (B, 1, L, L) mask."""
        B, M, N = memory.t.shape[0], memory.t.shape[1], self.cfg.n_tok
        hm, cm = self._memory_inputs(memory.z.to(h.device), memory.t.to(h.device))
        mc, ms = self.rope.placed_tables(memory.time, memory.offset, N)  # (B, 1, M*N, hd/2)
        L0 = mask.shape[0]
        rope = (torch.cat([rope[0][None, None].expand(B, 1, -1, -1), mc.to(h.device)], 2),
                torch.cat([rope[1][None, None].expand(B, 1, -1, -1), ms.to(h.device)], 2))
        full = torch.zeros((B, L0 + M * N, L0 + M * N), dtype=torch.bool, device=h.device)
        full[:, :L0, :L0] = mask
        full[:, L0 - T * N : L0, L0:] = memory.valid.to(h.device).repeat_interleave(N, 1)[:, None, :]  # targets see valid memory
        full[:, L0:, L0:] = self._own_frame_mask(M, h.device)
        return torch.cat([h, hm], 1), torch.cat([cond, cm], 1), rope, full[:, None]

    @torch.no_grad()
    def encode_memory(self, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (L, B, H, M*N, hd) of memory latents z (B, M, C, h, w) at noise t (B, M), each frame
        on its own at time 0 and no offset: what :meth:`place_memory` moves to a placement."""
        M, N = t.shape[1], self.cfg.n_tok
        h, cond = self._memory_inputs(z, t)
        rope = self.rope.tables(torch.zeros(M, dtype=torch.float64), N)
        rope = (rope[0].to(z.device), rope[1].to(z.device))
        mask, keep = self._own_frame_mask(M, z.device), []
        for blk in self.blocks:
            h = blk(h, cond, rope, mask=mask, keep=keep)
        return torch.stack([k for k, _ in keep]), torch.stack([v for _, v in keep])

    def place_memory(self, k: torch.Tensor, time: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Keys (L, B, H, M*N, hd) from :meth:`encode_memory`, moved to ``time`` (B, M) and ``offset`` (B, M, 2) tokens."""
        cos, sin = self.rope.placed_tables(time, offset, self.cfg.n_tok, grid=False)  # (B, 1, M*N, hd/2)
        return apply_rope(k, cos.to(k.device), sin.to(k.device))
