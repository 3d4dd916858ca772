"""Small building blocks shared by the models: norms, embeddings, 3-D RoPE, adaLN modulation.

Key choices:
- RMSNorm without affine on q/k (QK-norm) keeps attention logits bounded in long training runs.
- 3-D RoPE (time, row, col) splits each head's dims into three rotary groups. Angles are computed in
  float64 from absolute positions so that a rollout thousands of frames long rotates exactly; only
  position *differences* reach the attention scores, which is what lets the KV cache roll.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.rms_norm(x, (x.shape[-1],), eps=self.eps)
        return y * self.weight if self.weight is not None else y


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x (B, L, D) with per-token shift/scale (B, L, D)."""
    return x * (1 + scale) + shift


class TimestepEmbedding(nn.Module):
    """Noise level t in [0, 1] -> (D,) via sinusoidal features and an MLP."""

    def __init__(self, dim: int, freq_dim: int = 128) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = (t.float() * 1000.0)[..., None] * freqs  # (..., half)
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        # The MLP's dtype (bf16 weights), or fp32 where its Linears are int8-quantised (no Parameters).
        dtype = next((p.dtype for p in self.mlp.parameters()), torch.float32)
        return self.mlp(emb.to(dtype))


class Rope3D(nn.Module):
    """Rotary embedding over (time, row, col) for heads of size ``head_dim``.

    ``head_dim`` is split into time / row / col groups, each even. Spatial angles depend only on the
    fixed token grid and are precomputed; time angles are made on demand from absolute frame indices.
    """

    def __init__(self, head_dim: int, grid: tuple[int, int], base: float = 10000.0) -> None:
        super().__init__()
        t_dim = max(2, (head_dim // 4) // 2 * 2)
        s_dim = (head_dim - t_dim) // 2 // 2 * 2
        self.dims = (t_dim, s_dim, head_dim - t_dim - s_dim)
        assert self.dims[2] % 2 == 0, f"head_dim {head_dim} cannot be split into even RoPE groups"
        self.base = base
        gh, gw = grid
        rows = torch.arange(gh, dtype=torch.float64).repeat_interleave(gw)  # (N,)
        cols = torch.arange(gw, dtype=torch.float64).repeat(gh)  # (N,)
        ang = torch.cat([self._angles(rows, self.dims[1]), self._angles(cols, self.dims[2])], dim=-1)  # (N, s/2+c/2)
        self.register_buffer("sp_cos", ang.cos().float(), persistent=False)
        self.register_buffer("sp_sin", ang.sin().float(), persistent=False)

    def _angles(self, pos: torch.Tensor, dim: int) -> torch.Tensor:
        inv = self.base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
        return pos.double()[..., None] * inv.to(pos.device)

    def tables(self, frame_pos: torch.Tensor, n_tok: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin tables (F*N, head_dim/2) for frames at absolute ``frame_pos`` (F,), N tokens each."""
        t_ang = self._angles(frame_pos.to(torch.float64), self.dims[0])  # (F, t/2)
        t_cos, t_sin = t_ang.cos().float(), t_ang.sin().float()
        n_f = frame_pos.shape[0]
        t_cos = t_cos[:, None, :].expand(n_f, n_tok, -1)
        t_sin = t_sin[:, None, :].expand(n_f, n_tok, -1)
        s_cos = self.sp_cos[None].expand(n_f, -1, -1)
        s_sin = self.sp_sin[None].expand(n_f, -1, -1)
        cos = torch.cat([t_cos, s_cos], dim=-1).reshape(n_f * n_tok, -1)
        sin = torch.cat([t_sin, s_sin], dim=-1).reshape(n_f * n_tok, -1)
        return cos, sin


    def placed_tables(self, time: torch.Tensor, offset: torch.Tensor, n_tok: int, grid: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin tables (B, 1, M*N, head_dim/2) for M frames per batch row placed at ``time`` (B, M) and
        shifted by ``offset`` (B, M, 2) = (rows, cols) in tokens (fractions allowed).

        ``grid=False`` leaves out the tokens' own grid angles: the extra rotation that moves keys already
        rotated at (time 0, their grid cell) to the placement (rotations compose by adding angles).
        """
        B, M = time.shape
        t_ang = self._angles(time.double(), self.dims[0])[:, :, None, :].expand(B, M, n_tok, -1)  # (B, M, N, t/2)
        r_ang = self._angles(offset[..., 0].double(), self.dims[1])[:, :, None, :].expand(B, M, n_tok, -1)
        c_ang = self._angles(offset[..., 1].double(), self.dims[2])[:, :, None, :].expand(B, M, n_tok, -1)
        ang = torch.cat([t_ang, r_ang, c_ang], dim=-1)  # (B, M, N, hd/2)
        cos, sin = ang.cos(), ang.sin()
        if grid:  # cos(a + g) and sin(a + g) from the precomputed grid tables
            gc, gs = self.sp_cos.to(ang.device).double(), self.sp_sin.to(ang.device).double()  # (N, s/2 + c/2)
            ht = self.dims[0] // 2
            c2, s2 = cos[..., ht:], sin[..., ht:]
            cos = torch.cat([cos[..., :ht], c2 * gc - s2 * gs], dim=-1)
            sin = torch.cat([sin[..., :ht], s2 * gc + c2 * gs], dim=-1)
        return cos.float().reshape(B, 1, M * n_tok, -1), sin.float().reshape(B, 1, M * n_tok, -1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of x (B, H, L, hd) by angles with cos/sin (L, hd/2) or (B, 1, L, hd/2)."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # (B, H, L, hd/2) each
    y1 = x1 * cos - x2 * sin
    y2 = x1 * sin + x2 * cos
    return torch.stack([y1, y2], dim=-1).flatten(-2).to(x.dtype)


class ConvRefiner(nn.Module):
    """A few 3x3 convs at latent-cell resolution that correct a patch head's output, per frame.

    A token of ``patch`` cells must learn a sub-token move (a ball's 1-3 px step inside a 16 px token)
    once for every place in its patch; a conv learns it once for every place. Input: the head's
    output, the previous-frame stack and the noisy frame, all (B*F, ., h, w); the frame's conditioning
    (noise level and action) adds a per-channel bias. The last conv starts at zero, so a refiner added to
    a trained model changes nothing until it is trained.
    """

    def __init__(self, in_ch: int, out_ch: int, width: int, cond_dim: int, layers: int = 3) -> None:
        super().__init__()
        self.inp = nn.Conv2d(in_ch, width, 3, padding=1)
        self.cond = nn.Linear(cond_dim, width)
        self.mid = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(layers - 2))
        self.outp = nn.Conv2d(width, out_ch, 3, padding=1)
        nn.init.zeros_(self.outp.weight)
        nn.init.zeros_(self.outp.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, F, in_ch, h, w), cond (B, F, D) -> correction (B, F, out_ch, h, w)."""
        B, Fr = x.shape[:2]
        h = self.inp(x.flatten(0, 1)) + self.cond(F.silu(cond)).flatten(0, 1)[:, :, None, None]
        h = F.gelu(h)
        for conv in self.mid:
            h = F.gelu(conv(h))
        out = self.outp(h)
        return out.view(B, Fr, *out.shape[1:])



def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Frames x (N, C, h, w) resampled by a per-cell flow (N, 2, h, w) = (dx, dy) in cells:
    ``out[y, x] = x[y + dy, x + dx]`` (bilinear; the convention of :func:`worldloom.shift.warp`, per cell).

    Cells that sample outside the frame repeat the nearest edge cell. Whole-cell flows are exact (a zero
    flow returns x bit for bit), which grid_sample's normalised coordinates are not.
    """
    N, C, h, w = x.shape
    if flow.shape != (N, 2, h, w):
        raise ValueError(f"flow must be (N, 2, h, w) = {(N, 2, h, w)} for x of shape {tuple(x.shape)}, got {tuple(flow.shape)}")
    flow = flow.to(x.dtype)
    base = torch.floor(flow)  # (N, 2, h, w) whole cells; the fraction carries the gradient
    ax, ay = (flow - base).unbind(1)  # (N, h, w) each
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    X, Y = xs + base[:, 0].long(), ys + base[:, 1].long()  # (N, h, w)
    flat = x.flatten(2)  # (N, C, h*w)

    def at(dx: int, dy: int) -> torch.Tensor:
        idx = (Y + dy).clamp(0, h - 1) * w + (X + dx).clamp(0, w - 1)  # (N, h, w)
        return flat.gather(2, idx.view(N, 1, h * w).expand(N, C, h * w)).view(N, C, h, w)

    ax, ay = ax[:, None], ay[:, None]
    return ((1 - ax) * (1 - ay) * at(0, 0) + ax * (1 - ay) * at(1, 0)
            + (1 - ax) * ay * at(0, 1) + ax * ay * at(1, 1))


def snap_flow(flow: torch.Tensor, tol: float) -> torch.Tensor:
    """``flow`` with every value within ``tol`` cells of a whole cell replaced by that whole cell (forward), and
    the identity's gradient (straight-through), so a snapped flow still learns which way to move.

    Why: ``flow_warp`` resamples the previous frame bilinearly, so a flow a tenth of a cell off a whole-cell
    scroll mixes 10 % of the neighbour into every cell. Once per frame in a rollout, those blurs add up, and
    small things that only the previous frame carries (landmarks, walls) fade into the floor. The shipped arena
    model blends 41 % of its cells on steps where the camera moves (docs/BENCHMARKS.md, "Objects").
    """
    if tol <= 0:
        return flow
    whole = torch.round(flow)
    snapped = torch.where((flow - whole).abs() <= tol, whole, flow)
    return flow + (snapped - flow).detach()
