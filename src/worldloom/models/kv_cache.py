"""An explicit, preallocated KV cache: memory slots in front of a rolling window.

Layout: ``mem + window (+ spare)`` frame slots of ``n_tok`` tokens each, per layer, in one buffer
(L, B, H, slots*N, hd). The first ``mem`` slots hold long-term memory frames that a
:class:`~worldloom.memory.MemoryPolicy` chose for this step (their keys already placed, in time and
space, by the policy); the rest is a ring of the newest frames, so memory and per-frame work are flat
over unbounded rollouts.

Key choices:
- Attention is order-free over keys (positions live in RoPE), so the ring needs no shifting or
  ``torch.cat``: a new frame's keys are written into the slot it will own, and queries attend to the
  filled prefix of the buffer. Denoising passes write the same slot before the commit pass does, so
  every pass of a frame sees exactly the same past: the newest ``window - 1`` frames.
- A *fused* pass (``begin(2, commit=1)``) writes the finished frame and the next frame's first
  denoising pass at once (one forward instead of two). The next frame must not overwrite the oldest
  frame the finished one still sees, so such a cache keeps ``spare`` extra ring slots and an explicit
  key mask (who sees which slot) instead of the visible-prefix rule.
- Memory frames are seen by the frame being generated only, never by a frame being committed: the
  window's keys and values do not depend on what memory held when they were written, which keeps
  every step's result a function of that step's memory choice alone (and training simple: context
  frames never attend to memory, targets do).
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self,
        n_layers: int,
        batch: int,
        heads: int,
        head_dim: int,
        n_tok: int,
        window: int,
        mem: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        spare: int = 0,
    ) -> None:
        if window < 1:
            raise ValueError(f"KVCache window must be >= 1 frame, got {window}")
        if mem < 0:
            raise ValueError(f"KVCache mem must be >= 0 frames, got {mem}")
        if spare < 0:
            raise ValueError(f"KVCache spare must be >= 0 slots, got {spare}")
        self.n_tok, self.window, self.mem, self.spare = n_tok, window, mem, spare
        self.ring = window + spare
        self.slots = mem + self.ring
        shape = (n_layers, batch, heads, self.slots * n_tok, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.mem_valid = torch.zeros((batch, mem), dtype=torch.bool, device=device)  # which memory slots hold a frame
        self.mem_base: tuple[torch.Tensor, torch.Tensor] | None = None  # placed memory latents and cover (mem_copy models)
        self.n_frames = 0  # frames committed so far (absolute index of the next frame)
        self._masks: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
        self.begin(1)

    @property
    def next_pos(self) -> int:
        """Absolute frame index of the frame being generated."""
        return self.n_frames

    def slot_of(self, n: int) -> int:
        """Slot that absolute frame ``n`` occupies."""
        return self.mem + n % self.ring

    def slot(self) -> int:
        """Slot index that the next frame's keys/values occupy."""
        return self.slot_of(self.n_frames)

    def begin(self, n_new: int = 1, commit: int = 0) -> None:
        """Plan a pass over the next ``n_new`` frames, the first ``commit`` of them being committed: their
        slots, the keys to read and (if needed) a mask."""
        first, last = self.n_frames, self.n_frames + n_new - 1
        self._slots = [self.slot_of(n) for n in range(first, last + 1)]
        n_ring = min(last + 1, self.ring)
        self._n_keys = (self.mem + n_ring) * self.n_tok
        held = [self._frame_in_slot(j, last) for j in range(n_ring)]  # absolute frame per ring slot after this pass
        ring = None
        if not (n_new == 1 and all(f > last - self.window for f in held)):  # else every filled slot is visible
            key = (n_new, tuple(f - first for f in held))  # periodic once wrapped
            if key not in self._masks:
                q = torch.arange(first, last + 1)[:, None]  # (n_new, 1)
                f = torch.tensor(held)[None, :]  # (1, n_ring)
                vis = (f >= 0) & (f <= q) & (q - f < self.window)  # (n_new, n_ring)
                self._masks[key] = vis.repeat_interleave(self.n_tok, 0).repeat_interleave(self.n_tok, 1).to(self.k.device)
            ring = self._masks[key]
        if self.mem == 0:
            self._mask = ring
            return
        N, B = self.n_tok, self.mem_valid.shape[0]
        sees = (torch.arange(n_new, device=self.k.device) >= commit)[None, :, None] & self.mem_valid[:, None, :]  # (B, n_new, mem)
        mem_cols = sees.repeat_interleave(N, 1).repeat_interleave(N, 2)  # (B, n_new*N, mem*N)
        ring = torch.ones((n_new * N, n_ring * N), dtype=torch.bool, device=self.k.device) if ring is None else ring
        self._mask = torch.cat([mem_cols, ring[None].expand(B, -1, -1)], dim=2)[:, None]  # (B, 1, n_new*N, n_keys)

    def _frame_in_slot(self, j: int, last: int) -> int:
        """The newest frame <= ``last`` stored in ring slot ``j`` (-1 if none)."""
        if last - j < 0:
            return -1
        return j + self.ring * ((last - j) // self.ring)

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Put the planned frames' (B, H, n_new*N, hd) keys/values into their slots for ``layer``."""
        N = self.n_tok
        for i, slot in enumerate(self._slots):
            s = slot * N
            self.k[layer, :, :, s : s + N] = k[:, :, i * N : (i + 1) * N]
            self.v[layer, :, :, s : s + N] = v[:, :, i * N : (i + 1) * N]

    def keys(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Keys, values (B, H, n_keys, hd) and the bool mask ((n_new*N, n_keys) or (B, 1, n_new*N, n_keys);
        None: all visible) of the planned pass."""
        n = self._n_keys
        return self.k[:, :, :, :n][layer], self.v[:, :, :, :n][layer], self._mask

    def set_memory(self, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor,
                   base: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Memory frames for the coming step: placed keys and values (L, B, H, mem*N, hd), ``valid`` (B, mem),
        and for a ``mem_copy`` model the frames themselves in the current view (``models.mem_copy.align``)."""
        if valid.shape != self.mem_valid.shape:
            raise ValueError(f"memory validity must be {tuple(self.mem_valid.shape)}, got {tuple(valid.shape)}")
        n = self.mem * self.n_tok
        self.k[:, :, :, :n] = k.to(self.k.dtype)
        self.v[:, :, :, :n] = v.to(self.v.dtype)
        self.mem_valid.copy_(valid)
        self.mem_base = base

    def commit(self, n: int = 1) -> None:
        """The oldest ``n`` planned frames' keys/values are final: advance past them."""
        self.n_frames += n

    def reset(self) -> None:
        self.n_frames = 0
        self.mem_valid.zero_()
        self.mem_base = None

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.k, self.v))
