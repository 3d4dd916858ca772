"""An explicit, preallocated KV cache with attention-sink frames and a rolling window.

Layout: ``sink + window`` frame slots of ``n_tok`` tokens each, per layer, in one buffer
(L, B, H, slots*N, hd). The first ``sink`` frames ever written stay forever; later frames go round a
ring of ``window`` slots, so memory and per-frame work are flat over unbounded rollouts.

Key choices:
- Attention is order-free over keys (positions live in RoPE), so the ring needs no shifting or
  ``torch.cat``: a new frame's keys are written into the slot it will own, and queries attend to the
  filled prefix of the buffer. Denoising passes write the same slot before the commit pass does, so
  every pass of a frame sees exactly the same past: the sinks plus the newest ``window - 1`` frames.
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
    ) -> None:
        if window < 1:
            raise ValueError(f"KVCache window must be >= 1 frame, got {window}")
        if sink < 0:
            raise ValueError(f"KVCache sink must be >= 0 frames, got {sink}")
        self.n_tok, self.window, self.sink = n_tok, window, sink
        self.slots = sink + window
        shape = (n_layers, batch, heads, self.slots * n_tok, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        # Sink keys without their time rotation, (L, B, H, sink*N, hd).
        self.sink_k_raw = torch.zeros((n_layers, batch, heads, sink * n_tok, head_dim), dtype=dtype, device=device)
        self.n_frames = 0  # frames committed so far (absolute index of the next frame)

    @property
    def next_pos(self) -> int:
        """Absolute frame index of the frame being generated."""
        return self.n_frames

    def slot(self) -> int:
        """Slot index that the next frame's keys/values occupy."""
        n = self.n_frames
        if n < self.slots:
            return n
        return self.sink + (n - self.sink) % self.window

    def valid_tokens(self) -> int:
        """Tokens to attend to during the next frame's passes (its own slot included)."""
        return min(self.n_frames + 1, self.slots) * self.n_tok

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Put the current frame's (B, H, N, hd) keys/values into its slot for ``layer``."""
        s = self.slot() * self.n_tok
        self.k[layer, :, :, s : s + self.n_tok] = k
        self.v[layer, :, :, s : s + self.n_tok] = v

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

    def commit(self) -> None:
        """The current frame's keys/values are final: advance to the next frame."""
        self.n_frames += 1

    def reset(self) -> None:
        self.n_frames = 0

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.k, self.v, self.sink_k_raw))
