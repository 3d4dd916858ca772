"""Attention masks and the one place that calls scaled-dot-product attention.

Token layout in training: a clip of T frames appears as one or two *streams* of frames, each frame
N tokens. Stream 0 holds context frames (clean or lightly noised), stream 1, when present, holds the
noised targets. The one visibility rule covers both training modes:

    key visible to query  <=>  (key.stream == 0 and key.frame < query.frame)
                               or (key.frame == query.frame and key.stream == query.stream)

- one stream (diffusion forcing): block-causal, full inside a frame, causal across frames;
- two streams (clean-context teacher forcing): target frame i sees clean frames < i and itself,
  exactly what it sees at run time when past frames come from the KV cache.

Two ways to apply the rule, one rule (``_visible``): a boolean (L, L) mask for SDPA, the CPU path and
the reference; and a FlexAttention ``BlockMask`` (``block_mask``), which skips the key blocks a query
block cannot see (about 3/4 of them at two streams of 8 frames) and, compiled on CUDA, never
materialises the L x L mask. Parity on CPU: tests/models/test_attention.py.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
import torch.nn.functional as F

BACKENDS = ("auto", "sdpa", "flex")  # auto: flex on CUDA where torch has it, SDPA with a boolean mask elsewhere


def frame_layout(n_frames: int, n_tok: int, n_streams: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token (frame index, stream index) for ``n_streams`` streams of ``n_frames`` frames."""
    frame = torch.arange(n_frames, device=device).repeat_interleave(n_tok).repeat(n_streams)  # (S*T*N,)
    stream = torch.arange(n_streams, device=device).repeat_interleave(n_frames * n_tok)  # (S*T*N,)
    return frame, stream


def visibility_mask(frame: torch.Tensor, stream: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """Boolean (L, L) mask, True where the query (row) may attend to the key (column).

    ``window`` limits the past to the newest ``window - 1`` frames, as a rolling KV cache does.
    """
    return _visible(frame[:, None], frame[None, :], stream[:, None], stream[None, :], window)


def _visible(fq: torch.Tensor, fk: torch.Tensor, sq: torch.Tensor, sk: torch.Tensor, window: int | None) -> torch.Tensor:
    """The visibility rule on broadcastable (query, key) frame and stream indices."""
    past = (sk == 0) & (fk < fq)
    if window is not None:
        past = past & (fq - fk < window)
    return past | ((fk == fq) & (sk == sq))


@functools.cache
def flex_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch.nn.attention.flex_attention") is not None


def use_flex(backend: str, device: torch.device) -> bool:
    """Whether ``backend`` (one of BACKENDS) means FlexAttention on ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"attention backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "flex" and not flex_available():
        raise ValueError("attention backend 'flex': this torch has no torch.nn.attention.flex_attention (needs torch >= 2.5)")
    return backend == "flex" or (backend == "auto" and device.type == "cuda" and flex_available())


def block_mask(frame: torch.Tensor, stream: torch.Tensor, window: int | None = None) -> Any:
    """The visibility rule as a FlexAttention ``BlockMask`` over (L, L), on ``frame``'s device."""
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return _visible(frame[q], frame[k], stream[q], stream[k], window)

    L = frame.numel()
    return create_block_mask(mask_mod, None, None, L, L, device=frame.device)


_FLEX: dict[str, Callable[..., torch.Tensor]] = {}


def _flex(device: torch.device) -> Callable[..., torch.Tensor]:
    """flex_attention, compiled once on CUDA (its fused kernel); eager elsewhere (the reference, for parity)."""
    if device.type not in _FLEX:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX[device.type] = torch.compile(flex_attention, dynamic=False) if device.type == "cuda" else flex_attention
    return _FLEX[device.type]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any = None) -> torch.Tensor:
    """Attention on (B, H, L, hd) tensors. ``mask`` is None (all visible), a bool (Lq, Lk) or per-row
    (B, 1, Lq, Lk) mask (SDPA), or a FlexAttention ``BlockMask`` (from ``block_mask``)."""
    if mask is not None and not isinstance(mask, torch.Tensor):
        return _flex(q.device)(q, k, v, block_mask=mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
