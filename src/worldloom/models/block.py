"""One transformer block of the causal DiT: adaLN-Zero modulation, QK-normed attention with 3-D RoPE,
and an MLP with a depthwise conv inside each frame.

The block attends through ``attention.attend`` with whatever mask the caller built (boolean for SDPA,
a FlexAttention ``BlockMask``, or a KV cache's per-row mask), so one block serves the uncached training
pass, the cached rollout step and memory encoding (``keep`` collects its keys and values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from .attention import attend
from .kv_cache import KVCache
from .layers import RMSNorm, apply_rope, modulate

if TYPE_CHECKING:
    from .dit import DynamicsConfig


class Block(nn.Module):
    def __init__(self, cfg: DynamicsConfig) -> None:
        super().__init__()
        d, self.heads = cfg.dim, cfg.heads
        self.hd = d // cfg.heads
        self.norm1 = RMSNorm(d, affine=False)
        self.qkv = nn.Linear(d, 3 * d)
        self.q_norm = RMSNorm(self.hd)
        self.k_norm = RMSNorm(self.hd)
        self.proj = nn.Linear(d, d)
        self.norm2 = RMSNorm(d, affine=False)
        hidden, self.grid = int(d * cfg.mlp_ratio), cfg.grid
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        # Depthwise conv inside the MLP (within one frame, so caching is unaffected): a camera step
        # is a one-cell shift of the whole grid, which a 3x3 neighbourhood expresses directly.
        self.dw = nn.Conv2d(hidden, hidden, cfg.conv, padding=cfg.conv // 2, groups=hidden) if cfg.conv else None
        self.ada = nn.Linear(d, 6 * d)

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mlp[0](x)  # (B, F, N, hidden)
        if self.dw is not None:
            B, F, N, E = h.shape
            g = h.reshape(B * F, self.grid, self.grid, E).permute(0, 3, 1, 2)  # (B*F, E, g, g)
            h = h + self.dw(g).permute(0, 2, 3, 1).reshape(B, F, N, E)
        return self.mlp[2](self.mlp[1](h))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                mask: torch.Tensor | None = None, cache: KVCache | None = None, layer: int = 0,
                keep: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        # x (B, F, N, D); cond (B, F, D)
        B, F, N, D = x.shape
        mods = self.ada(torch.nn.functional.silu(cond))[:, :, None, :]  # (B, F, 1, 6D)
        sh1, sc1, g1, sh2, sc2, g2 = mods.chunk(6, dim=-1)
        h = modulate(self.norm1(x), sh1, sc1).reshape(B, F * N, D)
        q, k, v = self.qkv(h).view(B, F * N, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)  # (B, H, L, hd)
        q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = rope  # (L, hd/2) or per batch row (B, 1, L, hd/2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if keep is not None:  # memory encoding: this layer's keys and values
            keep.append((k, v))
        if cache is None:
            o = attend(q, k, v, mask)
        else:
            cache.write(layer, k.to(cache.k.dtype), v.to(cache.v.dtype))
            ck, cv, cmask = cache.keys(layer)
            o = attend(q, ck.to(q.dtype), cv.to(q.dtype), cmask)
        o = o.transpose(1, 2).reshape(B, F, N, D)
        x = x + g1 * self.proj(o)
        x = x + g2 * self.ffn(modulate(self.norm2(x), sh2, sc2))
        return x
