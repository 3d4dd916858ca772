"""Causal diffusion transformer over latent frames: the dynamics model.

``forward(x, t, actions)`` denoises a clip of latent frames (B, T, C, h, w) where every frame has
its own noise level ``t`` (B, T) and action (B, T). Tokens are 2-D patches of each latent frame;
attention is full inside a frame and causal across frames (see ``attention.py``). Passing ``ctx``
adds a second stream of clean context frames, so that every target frame is trained against a clean
past, as it will be at run time. ``step`` runs one frame against a ``KVCache`` for rollouts. ``memory`` (:class:`MemoryFrames`) adds
long-term memory frames that the targets attend to besides their window (``worldloom.memory``).

Key choices:
- adaLN-Zero conditioning from (noise level + action) per frame: the action of step i modulates
  every token of frame i in every block, which is the strongest cheap form of action conditioning.
- QK-norm and 3-D RoPE (time, row, col) so attention is translation-aware and the cache can roll.
- Frame stacking (``prev_frame``): each frame's tokens also carry the previous latent frame,
  spatially aligned, as extra input channels. Attention over the cache gives long memory; the
  stacked frame gives the immediate past a direct path, so "copy and shift by the action" is a
  local operation. Without it a CPU-sized run learned to denoise each frame from its own noisy
  input and barely used the context (next-frame PSNR at t = 1 ~20 dB vs ~35 dB for copying).
- Output is the flow-matching velocity v = eps - x0 (see ``diffusion/schedules.py``).
- Memory frames (``dit_memory.py``) are encoded on their own and placed by rotating their keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.utils.checkpoint

from ..config import doc
from .attention import block_mask, frame_layout, use_flex, visibility_mask
from .block import Block
from .kv_cache import KVCache
from .layers import ConvRefiner, RMSNorm, Rope3D, TimestepEmbedding, flow_warp, modulate, snap_flow
from .dit_memory import MemoryAttention, MemoryFrames
from .mem_copy import MemoryCopy, align, newest_only

T_MIN = 1e-3  # 'delta' models divide by t to return a velocity; no sampler or training step goes below


@dataclass
class DynamicsConfig:
    latent_channels: int = doc(8, "channels of the tokenizer's latent grid")
    latent_size: int = doc(16, "height = width of the latent grid")
    patch: int = doc(2, "latent cells per token side (tokens/frame = (latent_size/patch)^2)")
    dim: int = doc(256, "transformer width")
    depth: int = doc(6, "number of transformer blocks")
    heads: int = doc(8, "attention heads")
    mlp_ratio: float = doc(4.0, "MLP hidden size / width")
    n_actions: int = doc(5, "number of discrete actions (+1 internal 'no action' id for dropout)")
    n_axes: int = doc(0, "continuous action axes (values normalised to [-1, 1] by the ActionSpec's ranges)")
    max_frames: int = doc(16, "longest clip trained on; the cache window must fit inside it")
    prev_frame: bool = doc(True, "also feed each frame's previous latent frame as input channels (frame stacking)")
    pred: str = doc("v", choices=("v", "delta", "warp"),
                    text="what the head predicts: 'v' (flow velocity), 'delta' (clean frame minus previous frame) or "
                         "'warp' (a per-cell flow that resamples the previous frame, plus a residual)")
    conv: int = doc(0, "kernel of a depthwise conv over each frame's token grid inside every MLP (0 = none)")
    prev_halo: int = doc(0, "latent cells of border around each token's patch of the stacked previous frame")
    prev_frames: int = doc(1, "how many previous latent frames frame stacking feeds, newest first (2 puts a velocity in every token's input)")
    head_conv: int = doc(0, "width of a 3-layer 3x3 conv refiner at latent-cell resolution after the head (0 = none; layers.ConvRefiner)")
    flow_snap: float = doc(0.0, "a 'warp' flow within this many cells of a whole cell moves by that whole cell (straight-through "
                                "gradient): a whole-cell scroll then copies exactly instead of blurring a little every frame; "
                                "0.5 rounds every flow, 0 = off (layers.snap_flow)")
    mem_copy: bool = doc(False, "a per-cell gate may take the new frame's base from the placed memory frame instead of the "
                                "previous frame, before the flow warps it: a revisited place is copied, not redrawn "
                                "('delta' and 'warp' heads; models.mem_copy)")

    @property
    def grid(self) -> int:
        return self.latent_size // self.patch

    @property
    def n_tok(self) -> int:
        return self.grid * self.grid


def check_flow_snap(flow_snap: float, pred: str) -> None:
    """DynamicsConfig.flow_snap's rule: in [0, 0.5] cells, and 0 for a head that predicts no flow."""
    if not 0.0 <= flow_snap <= 0.5 or (flow_snap and pred != "warp"):
        raise ValueError(f"DynamicsConfig.flow_snap must be in [0, 0.5] cells, and 0 unless pred is 'warp'; got "
                         f"{flow_snap} with pred {pred!r}")


class CausalDiT(MemoryAttention, nn.Module):
    def __init__(self, cfg: DynamicsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, p, d = cfg.latent_channels, cfg.patch, cfg.dim
        if cfg.latent_size % p:
            raise ValueError(f"latent_size {cfg.latent_size} is not divisible by patch {p}")
        if d % cfg.heads:
            raise ValueError(f"dim {d} is not divisible by heads {cfg.heads}")
        if cfg.pred not in ("v", "delta", "warp"):
            raise ValueError(f"DynamicsConfig.pred must be 'v', 'delta' or 'warp', got {cfg.pred!r}")
        if cfg.prev_frames < 1:
            raise ValueError(f"DynamicsConfig.prev_frames must be >= 1, got {cfg.prev_frames}")
        if cfg.head_conv < 0:
            raise ValueError(f"DynamicsConfig.head_conv must be >= 0, got {cfg.head_conv}")
        check_flow_snap(cfg.flow_snap, cfg.pred)
        if cfg.mem_copy and (cfg.pred == "v" or not cfg.prev_frame):
            raise ValueError(f"DynamicsConfig.mem_copy needs a previous-frame base: pred 'delta' or 'warp' and prev_frame; "
                             f"got pred {cfg.pred!r}, prev_frame {cfg.prev_frame}")
        if cfg.conv < 0 or (cfg.conv and cfg.conv % 2 == 0):
            raise ValueError(f"DynamicsConfig.conv must be 0 or an odd kernel size, got {cfg.conv}")
        k = p + 2 * cfg.prev_halo  # side of the previous-frame window each token sees
        self.x_in = nn.Linear(c * p * p + (cfg.prev_frames * c * k * k if cfg.prev_frame else 0), d)
        self.pos = nn.Parameter(torch.zeros(1, 1, cfg.n_tok, d))  # learned spatial bias, on top of RoPE
        self.t_emb = TimestepEmbedding(d)
        self.a_emb = nn.Embedding(cfg.n_actions + 1, d)  # last id = "no action" (dropout, action-free data)
        # Continuous axes join the same adaLN path as the discrete action: a linear map of the values.
        self.ax_in = nn.Linear(cfg.n_axes, d) if cfg.n_axes else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm_out = RMSNorm(d, affine=False)
        self.ada_out = nn.Linear(d, 2 * d)
        # 'warp' adds two flow channels (dx, dy in cells) per latent cell to the head's output.
        head_ch = c + (2 if cfg.pred == "warp" else 0)
        self.out = nn.Linear(d, head_ch * p * p)
        # The refiner sees the head's output, the previous-frame stack (if any) and the noisy frame; with a 'warp'
        # head it corrects the flow too: with two previous frames an object's local motion is in its input.
        self.refine = ConvRefiner(c * (2 + (cfg.prev_frames if cfg.prev_frame else 0)), head_ch, cfg.head_conv, d) \
            if cfg.head_conv else None
        self.mem_copy = MemoryCopy(c, d) if cfg.mem_copy else None
        self.rope = Rope3D(d // cfg.heads, (cfg.grid, cfg.grid))
        self._masks: dict[tuple[Any, ...], Any] = {}
        self._checkpointing, self._attention = False, "auto"
        # Training's flow_pin reads the flow of the last pass's targets (B, T, 2, h, w) here; off at run time.
        self.keep_flow, self.flow = False, None
        self.reset_parameters()

    def set_checkpointing(self, on: bool) -> None:
        """Activation checkpointing per block in the uncached pass (training): memory for one block's
        activations instead of every block's, at the cost of a second forward in backward."""
        self._checkpointing = bool(on)

    def set_attention(self, backend: str) -> None:
        """The uncached pass's attention: 'sdpa' (boolean mask), 'flex' (FlexAttention block mask) or
        'auto' (flex on CUDA, sdpa elsewhere). Passes with memory frames keep SDPA's per-row mask."""
        use_flex(backend, torch.device("cpu"))  # refuses an unknown backend now
        self._attention = backend

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        # Unit scale, like the timestep embedding it is added to: at 0.02 the action was ~4 % of the
        # conditioning signal and CPU-sized runs learned to ignore it (rotated actions scored the same).
        nn.init.normal_(self.a_emb.weight, std=1.0)
        if self.ax_in is not None:  # the same unit scale for axes: xavier's ~0.09 per axis was ignored (Pendulum, 1,000 steps)
            nn.init.normal_(self.ax_in.weight, std=1.0)
        nn.init.normal_(self.pos, std=0.02)
        for blk in self.blocks:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(blk.ada.weight)
            nn.init.zeros_(blk.ada.bias)
            if blk.dw is not None:  # starts as the plain MLP
                nn.init.zeros_(blk.dw.weight)
                nn.init.zeros_(blk.dw.bias)
        nn.init.zeros_(self.ada_out.weight)
        nn.init.zeros_(self.ada_out.bias)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def no_action(self) -> int:
        return self.cfg.n_actions

    # --- patches -------------------------------------------------------------------------------
    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        B, F, C, h, w = x.shape  # (B, F, C, h, w) -> (B, F, N, C*p*p)
        p, g = self.cfg.patch, self.cfg.grid
        x = x.reshape(B, F, C, g, p, g, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(B, F, g * g, C * p * p)

    def _unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        B, F, N, _ = x.shape  # (B, F, N, C*p*p) -> (B, F, C, h, w)
        p, g = self.cfg.patch, self.cfg.grid
        C = x.shape[-1] // (p * p)
        x = x.reshape(B, F, g, g, C, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return x.reshape(B, F, C, g * p, g * p)

    def _prev_patches(self, prev: torch.Tensor) -> torch.Tensor:
        """Previous-frame stacks (B, F, K*C, h, w) -> each token's window of them (B, F, N, K*C*k*k), k = patch + 2 halo."""
        B, F, C, h, w = prev.shape
        p, e = self.cfg.patch, self.cfg.prev_halo
        if e == 0:
            return self._patchify(prev)
        # A one-cell halo puts a one-cell camera step (4 px) inside every token's own input.
        win = nn.functional.unfold(nn.functional.pad(prev.reshape(B * F, C, h, w), (e, e, e, e)), p + 2 * e, stride=p)
        return win.transpose(1, 2).reshape(B, F, self.cfg.n_tok, -1)  # (B, F, N, C*k*k)

    def _tokens(self, x: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        """Frames x (B, F, C, h, w) and their previous-frame stacks ((B, F, K*C, h, w), or None) -> (B, F, N, D)."""
        feats = self._patchify(x)  # (B, F, N, C*p*p)
        if self.cfg.prev_frame:
            B, F, C, h, w = x.shape
            prev = x.new_zeros((B, F, self.cfg.prev_frames * C, h, w)) if prev is None else prev.to(x.dtype)
            feats = torch.cat([feats, self._prev_patches(prev)], dim=-1)
        return self.x_in(feats.to(self.pos.dtype)) + self.pos  # inputs follow the weights (fp32/bf16)

    @staticmethod
    def shifted(frames: torch.Tensor, first: torch.Tensor | None = None) -> torch.Tensor:
        """Each frame's previous frame: (B, T, ...) -> (B, T, ...), frame 0 gets ``first`` or zeros."""
        head = torch.zeros_like(frames[:, :1]) if first is None else first[:, None].to(frames.dtype)
        return torch.cat([head, frames[:, :-1]], dim=1)

    def history(self, frames: torch.Tensor, before: torch.Tensor | None = None) -> torch.Tensor:
        """Each frame's previous-frame stack: frames (B, T, C, h, w) -> (B, T, K*C, h, w), newest first.

        ``before`` (B, T0, C, h, w) are the frames preceding the clip, oldest first (its last
        ``prev_frames`` are used); missing frames are zeros, as at the start of a rollout.
        """
        B, T, C, h, w = frames.shape
        K = self.cfg.prev_frames
        pad = frames.new_zeros((B, K, C, h, w))
        if before is not None:
            b = before[:, -K:].to(frames.dtype)
            pad = torch.cat([pad[:, : K - b.shape[1]], b], dim=1)
        seq = torch.cat([pad, frames], dim=1)  # (B, K + T, C, h, w)
        return torch.cat([seq[:, K - j : K - j + T] for j in range(1, K + 1)], dim=2)

    def push(self, stack: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """The previous-frame stack (B, K*C, h, w) after frame z (B, C, h, w) is finished: z newest, the oldest dropped."""
        if stack is None:
            stack = z.new_zeros((z.shape[0], self.cfg.prev_frames * z.shape[1], *z.shape[2:]))
        return torch.cat([z.to(stack.dtype), stack[:, : stack.shape[1] - z.shape[1]]], dim=1)

    def _cond(self, t: torch.Tensor, actions: torch.Tensor, axes: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame conditioning (B, F, D) from noise t (B, F), action ids (B, F) and axes (B, F, n_axes)."""
        c = self.t_emb(t) + self.a_emb(actions)
        if self.ax_in is None:
            if axes is not None and axes.shape[-1]:
                raise ValueError(f"this DiT has no action axes (n_axes=0), got axis values of shape {tuple(axes.shape)}")
            return c
        if axes is None or axes.shape[:2] != actions.shape or axes.shape[-1] != self.cfg.n_axes:
            raise ValueError(f"this DiT takes {self.cfg.n_axes} axis values per frame, shape {(*actions.shape, self.cfg.n_axes)}; "
                             f"got {None if axes is None else tuple(axes.shape)}")
        return c + self.ax_in(axes.to(c.dtype))

    def _head(self, h: torch.Tensor, cond: torch.Tensor, x: torch.Tensor, t: torch.Tensor,
              prev: torch.Tensor | None, mem: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Tokens h (B, F, N, D) -> velocity (B, F, C, h, w) for noisy frames x at noise t (B, F); ``mem``: the
        placed memory base (B, F, C, h, w) and where it covers (B, F, 1, h, w), for a ``mem_copy`` model."""
        sh, sc = self.ada_out(torch.nn.functional.silu(cond))[:, :, None, :].chunk(2, dim=-1)
        out = self._unpatchify(self.out(modulate(self.norm_out(h), sh, sc))).float()
        C = self.cfg.latent_channels
        out, flow = out[:, :, :C], out[:, :, C:]  # flow (B, F, 2, h, w) for 'warp', else empty
        if self.refine is not None:
            B, F = out.shape[:2]
            parts = [out, x.float()]
            if self.cfg.prev_frame:
                parts.append(out.new_zeros((B, F, self.cfg.prev_frames * C, *out.shape[3:])) if prev is None else prev.float())
            w = self.refine.inp.weight
            corr = self.refine(torch.cat(parts, 2).to(w.dtype), cond.to(w.dtype)).float()
            out, flow = out + corr[:, :, :C], flow + corr[:, :, C:]
        if self.cfg.pred == "v":
            return out
        # 'delta': out is x0 - prev, so an untrained model copies the last frame; v = (x - x0) / t.
        # 'warp': x0 = prev resampled by the flow + out; the flow head starts at zero, so it starts as 'delta'.
        # A sub-cell move of a small object is then one flow value, not a patch of residuals to learn per place.
        if prev is None:
            x0 = out
        else:
            base = prev[:, :, :C].float()
            if mem is not None and self.mem_copy is not None:  # copy a revisited place, before the flow moves it
                base = self.mem_copy(base, mem[0].float(), mem[1].float(), out, cond)
            if self.cfg.pred == "warp":
                if self.keep_flow:
                    self.flow = flow
                flow = snap_flow(flow, self.cfg.flow_snap)
                base = flow_warp(base.flatten(0, 1), flow.flatten(0, 1)).view_as(base)
            x0 = out + base
        return (x.float() - x0) / t.float().clamp_min(T_MIN)[..., None, None, None]

    def _mask(self, n_frames: int, n_streams: int, device: torch.device, window: int | None, flex: bool = False) -> Any:
        """The (L, L) visibility mask, or with ``flex`` its FlexAttention block mask; built once per layout."""
        key = (n_frames, n_streams, window, flex, str(device))
        if key not in self._masks:
            frame, stream = frame_layout(n_frames, self.cfg.n_tok, n_streams, device)
            self._masks[key] = (block_mask if flex else visibility_mask)(frame, stream, window)
        return self._masks[key]

    # --- uncached: training and reference -------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, actions: torch.Tensor,
                ctx: torch.Tensor | None = None, ctx_t: torch.Tensor | None = None,
                window: int | None = None, prev: torch.Tensor | None = None, axes: torch.Tensor | None = None,
                memory: MemoryFrames | None = None) -> torch.Tensor:
        """Predict v for every frame of ``x`` (B, T, C, h, w) at noise ``t`` (B, T) given ``actions`` (B, T).

        Without ``ctx``: one block-causal stream (diffusion forcing). With ``ctx`` (B, T, C, h, w) and
        ``ctx_t`` (B, T): frame i of ``x`` sees context frames < i (noise ``ctx_t``) and itself.
        ``window`` limits each frame's past to the newest ``window - 1`` frames (rolling-cache reference).
        ``prev`` (B, T, K*C, h, w) overrides the previous-frame stacks fed by frame stacking; by default
        they are :meth:`history` of the (context) clip, zeros before the first frame. ``axes``
        (B, T, n_axes): each frame's normalised continuous action values (models with axes only).
        ``memory``: frames the targets (the last stream) also see, encoded each on its own at their
        placement; context frames never see them.
        """
        B, T = x.shape[:2]
        if T > self.cfg.max_frames:
            raise ValueError(f"clip of {T} frames exceeds max_frames={self.cfg.max_frames}")
        streams = [x] if ctx is None else [ctx, x]
        ts = [t] if ctx is None else [ctx_t, t]
        if prev is None:
            prev = self.history(streams[0])  # the past as the model sees it: context (or the noisy clip)
        h = torch.cat([self._tokens(s, prev) for s in streams], dim=1)  # (B, S*T, N, D)
        cond = torch.cat([self._cond(tt, actions, axes) for tt in ts], dim=1)  # (B, S*T, D)
        pos = torch.arange(T, device=x.device).repeat(len(streams))
        rope = self.rope.tables(pos, self.cfg.n_tok)
        mask = self._mask(T, len(streams), x.device, window, flex=memory is None and use_flex(self._attention, x.device))
        if memory is not None:
            h, cond, rope, mask = self._with_memory(h, cond, rope, mask, memory, T)
        for blk in self.blocks:
            if self._checkpointing and torch.is_grad_enabled():  # recomputed in backward: activations of one block kept
                h = torch.utils.checkpoint.checkpoint(blk, h, cond, rope, mask, use_reentrant=False)
            else:
                h = blk(h, cond, rope, mask=mask)
        n = len(streams) * T
        mem = None
        if memory is not None and self.mem_copy is not None:  # the newest target's placed memory frame
            mem = newest_only(*align(memory.z.to(x.device), memory.offset, memory.valid, self.cfg.patch), T)
        return self._head(h[:, n - T : n], cond[:, n - T : n], x, t, prev, mem)

    # --- cached: rollouts -----------------------------------------------------------------------
    def new_cache(self, batch: int, window: int, mem: int = 0, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None, spare: int = 0) -> KVCache:
        """A rolling cache with ``mem`` memory slots; ``spare`` = 1 extra ring slot allows :meth:`step_fused`
        (it does not widen the window)."""
        if window > self.cfg.max_frames:
            raise ValueError(f"cache window {window} frames exceeds max_frames={self.cfg.max_frames}")
        p = next(self.parameters())
        return KVCache(self.cfg.depth, batch, self.cfg.heads, self.cfg.dim // self.cfg.heads, self.cfg.n_tok,
                       window=window, mem=mem, dtype=dtype or p.dtype, device=device or p.device, spare=spare)

    def step(self, x: torch.Tensor, t: torch.Tensor, action: torch.Tensor, cache: KVCache,
             commit: bool = False, prev: torch.Tensor | None = None, axes: torch.Tensor | None = None) -> torch.Tensor:
        """One frame x (B, C, h, w) at noise t (B,) and action (B,) against ``cache``; returns v (B, C, h, w).

        The frame attends to the cached past and itself. ``commit=True`` keeps its keys/values as
        the newest past frame (call it once per frame, with the clean or lightly noised frame).
        ``prev`` (B, K*C, h, w) is the previous-frame stack (:meth:`push`; None before the first frame).
        ``axes`` (B, n_axes): the action's normalised axis values (models with axes only).
        """
        p = None if prev is None else prev[:, None]
        ax = None if axes is None else axes[:, None]
        return self._cached(x[:, None], t[:, None], action[:, None], p, cache, commit=int(commit), axes=ax)[:, 0]

    def step_fused(self, z: torch.Tensor, tz: torch.Tensor, az: torch.Tensor, prev_z: torch.Tensor | None,
                   x: torch.Tensor, t: torch.Tensor, action: torch.Tensor, cache: KVCache,
                   axes_z: torch.Tensor | None = None, axes: torch.Tensor | None = None) -> torch.Tensor:
        """Commit the finished frame z and take the next frame's first pass in ONE forward; returns x's v (B, C, h, w).

        Equivalent to ``step(z, tz, az, cache, commit=True, prev=prev_z)`` followed by
        ``step(x, t, action, cache, prev=z)``, at the cost of one pass over two frames instead of two
        passes over one: the finished frame sees only its past, the new frame sees it too (and the
        cache's memory frames). Needs a cache with a spare slot.
        """
        if cache.spare < 1:
            raise ValueError(f"step_fused needs a cache with spare >= 1, got spare {cache.spare}")
        first = self.push(None, torch.zeros_like(z)) if prev_z is None else prev_z  # z's own stack (B, K*C, h, w)
        prev = torch.stack([first, self.push(prev_z, z)], 1)  # (B, 2, K*C, h, w)
        ax = None if axes is None else torch.stack([axes_z, axes], 1)  # (B, 2, n_axes)
        v = self._cached(torch.stack([z, x], 1), torch.stack([tz, t], 1), torch.stack([az, action], 1), prev, cache, commit=1,
                         axes=ax)
        return v[:, 1]

    def _cached(self, x: torch.Tensor, t: torch.Tensor, action: torch.Tensor, prev: torch.Tensor | None,
                cache: KVCache, commit: int = 0, axes: torch.Tensor | None = None) -> torch.Tensor:
        """Frames x (B, F, C, h, w), the next F frames of the rollout, against ``cache``; commits the first ``commit``."""
        F, n_tok = x.shape[1], self.cfg.n_tok
        cache.begin(F, commit)
        h = self._tokens(x, prev)  # (B, F, N, D)
        cond = self._cond(t, action, axes)  # (B, F, D)
        rope = self.rope.tables(torch.arange(cache.next_pos, cache.next_pos + F, dtype=torch.float64), n_tok)
        rope = (rope[0].to(x.device), rope[1].to(x.device))
        for i, blk in enumerate(self.blocks):
            h = blk(h, cond, rope, cache=cache, layer=i)
        mem = None  # the placed memory frame, for the newest frame if it is not being committed (it sees memory)
        if self.mem_copy is not None and cache.mem_base is not None and F > commit:
            mem = newest_only(*cache.mem_base, F)
        out = self._head(h, cond, x, t, prev, mem)  # zeros as prev behave exactly as None (no previous frame)
        if commit:
            cache.commit(commit)
        return out
