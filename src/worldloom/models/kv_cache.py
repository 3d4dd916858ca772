"""An explicit, preallocated KV cache with attention-sink frames and a rolling window.

Layout: ``sink + window`` frame slots of ``n_tok`` tokens each, per layer, in one buffer
(L, B, H, slots*N, hd). The first ``sink`` frames ever written stay forever; later frames go round a
ring of ``window`` slots, so memory and per-frame work are flat over unbounded rollouts.

Key choices:
- Attention is order-free over keys (positions live in RoPE), so the ring needs no shifting or
  ``torch.cat``: a new frame's keys are written into the slot it will own, and queries attend to the
  filled prefix of the buffer. Denoising passes write the same slot before the commit pass does, so
  every pass of a frame sees exactly the same past: the sinks plus the newest ``window - 1`` frames.
- A *fused* pass (``begin(2)``) writes the finished frame and the next frame's first denoising pass
  at once (one forward instead of two). The next frame must not overwrite the oldest frame the
  finished one still sees, so such a cache keeps ``spare`` extra ring slots and an explicit key mask
  (who sees which slot) instead of the visible-prefix rule.
- Keys are stored rotated at their absolute frame index. Sink keys are kept un-rotated in time as
  well and re-rotated each frame to sit just before the window, so the time distances the model sees
  stay inside the range it was trained on (≤ ``sink + window - 1``) however long the rollout.
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
        sink: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        spare: int = 0,
    ) -> None:
        if window < 1:
            raise ValueError(f"KVCache window must be >= 1 frame, got {window}")
        if sink < 0:
            raise ValueError(f"KVCache sink must be >= 0 frames, got {sink}")
        if spare < 0:
            raise ValueError(f"KVCache spare must be >= 0 slots, got {spare}")
        self.n_tok, self.window, self.sink, self.spare = n_tok, window, sink, spare
        self.ring = window + spare
        self.slots = sink + self.ring
        shape = (n_layers, batch, heads, self.slots * n_tok, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        # Sink keys without their time rotation, (L, B, H, sink*N, hd).
        self.sink_k_raw = torch.zeros((n_layers, batch, heads, sink * n_tok, head_dim), dtype=dtype, device=device)
        self.n_frames = 0  # frames committed so far (absolute index of the next frame)
        self._masks: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
        self.begin(1)

    @property
    def next_pos(self) -> int:
        """Absolute frame index of the frame being generated."""
        return self.n_frames

    def slot_of(self, n: int) -> int:
        """Slot that absolute frame ``n`` occupies."""
        return n if n < self.sink else self.sink + (n - self.sink) % self.ring

    def slot(self) -> int:
        """Slot index that the next frame's keys/values occupy."""
        return self.slot_of(self.n_frames)

    def begin(self, n_new: int = 1) -> None:
        """Plan a pass over the next ``n_new`` frames: their slots, the keys to read and (if needed) a mask."""
        first, last = self.n_frames, self.n_frames + n_new - 1
        self._slots = [self.slot_of(n) for n in range(first, last + 1)]
        n_keys = min(last + 1, self.slots)
        self._n_keys = n_keys * self.n_tok
        held = [self._frame_in_slot(j, last) for j in range(n_keys)]  # absolute frame per slot after this pass
        if n_new == 1 and all(f > last - self.window or f < self.sink for f in held):
            self._mask = None  # every filled slot is visible: the prefix rule
            return
        key = (n_new, tuple(f - first if f >= self.sink else -1 - f for f in held))  # periodic once wrapped
        if key not in self._masks:
            q = torch.arange(first, last + 1)[:, None]  # (n_new, 1)
            f = torch.tensor(held)[None, :]  # (1, n_keys)
            vis = (f >= 0) & (f <= q) & ((f < self.sink) | (q - f < self.window))  # (n_new, n_keys)
            self._masks[key] = vis.repeat_interleave(self.n_tok, 0).repeat_interleave(self.n_tok, 1).to(self.k.device)
        self._mask = self._masks[key]

    def _frame_in_slot(self, j: int, last: int) -> int:
        """The newest frame <= ``last`` stored in slot ``j`` (-1 if none)."""
        if j < self.sink:
            return j if j <= last else -1
        r = j - self.sink
        if last - self.sink - r < 0:
            return -1
        return self.sink + r + self.ring * ((last - self.sink - r) // self.ring)

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Put the planned frames' (B, H, n_new*N, hd) keys/values into their slots for ``layer``."""
        N = self.n_tok
        for i, slot in enumerate(self._slots):
            s = slot * N
            self.k[layer, :, :, s : s + N] = k[:, :, i * N : (i + 1) * N]
            self.v[layer, :, :, s : s + N] = v[:, :, i * N : (i + 1) * N]

    def keys(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Keys, values (B, H, n_keys, hd) and the bool (n_new*N, n_keys) mask (None: all) of the planned pass."""
        n = self._n_keys
        return self.k[layer, :, :, :n], self.v[layer, :, :, :n], self._mask

    def keep_raw_sink(self, layer: int, k_raw: torch.Tensor) -> None:
        """Remember a sink frame's keys before time rotation (only while sink slots fill)."""
        s = self.n_frames * self.n_tok
        self.sink_k_raw[layer, :, :, s : s + self.n_tok] = k_raw

    def is_sink_frame(self) -> bool:
        return self.n_frames < self.sink

    def sink_positions(self) -> torch.Tensor | None:
        """Time positions the sinks should take for the next frame, or None if no re-rotation is due.

        Once the ring has wrapped, the oldest visible window frame is ``next_pos - window + 1``; the
        sinks are placed on the indices right before it.
        """
        if self.sink == 0 or self.n_frames < self.slots:
            return None
        first = self.next_pos - self.window + 1
        return torch.arange(first - self.sink, first, dtype=torch.float64)

    def commit(self, n: int = 1) -> None:
        """The oldest ``n`` planned frames' keys/values are final: advance past them."""
        self.n_frames += n

    def reset(self) -> None:
        self.n_frames = 0

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.k, self.v, self.sink_k_raw))
