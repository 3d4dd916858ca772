"""Attention masks and the one place that calls scaled-dot-product attention.

Token layout in training: a clip of T frames appears as one or two *streams* of frames, each frame
N tokens. Stream 0 holds context frames (clean or lightly noised), stream 1, when present, holds the
noised targets. The one visibility rule covers both training modes:

    key visible to query  <=>  (key.stream == 0 and key.frame < query.frame)
                               or (key.frame == query.frame and key.stream == query.stream)

- one stream (diffusion forcing): block-causal, full inside a frame, causal across frames;
- two streams (clean-context teacher forcing): target frame i sees clean frames < i and itself,
  exactly what it sees at run time when past frames come from the KV cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def frame_layout(n_frames: int, n_tok: int, n_streams: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token (frame index, stream index) for ``n_streams`` streams of ``n_frames`` frames."""
    frame = torch.arange(n_frames, device=device).repeat_interleave(n_tok).repeat(n_streams)  # (S*T*N,)
    stream = torch.arange(n_streams, device=device).repeat_interleave(n_frames * n_tok)  # (S*T*N,)
    return frame, stream


def visibility_mask(frame: torch.Tensor, stream: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """Boolean (L, L) mask, True where the query (row) may attend to the key (column).

    ``window`` limits the past to the newest ``window - 1`` frames, as a rolling KV cache does.
    """
    fq, fk = frame[:, None], frame[None, :]
    sq, sk = stream[:, None], stream[None, :]
    past = (sk == 0) & (fk < fq)
    if window is not None:
        past = past & (fq - fk < window)
    return past | ((fk == fq) & (sk == sq))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """SDPA on (B, H, L, hd) tensors; ``mask`` is None (all visible) or a bool (Lq, Lk) or per-row (B, 1, Lq, Lk) mask."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
