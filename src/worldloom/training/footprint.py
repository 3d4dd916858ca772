"""Know before you start: the memory a dynamics training run needs per device, without allocating it.

``worldloom doctor --preset P [--batch B --frames T --gpus G --parallel ddp|fsdp]`` prints
:func:`estimate`. The model is built on the meta device (shapes and dtypes, no storage) and one training
forward runs there under :func:`torch.autograd.graph.saved_tensors_hooks`, so the activation term is the
bytes the autograd graph of *this* code keeps for backward (each storage once), not a formula that can
drift from it. Terms, in bytes per device:

- weights (fp32 master), gradients (fp32), AdamW's two moments (fp32) and the EMA copy: 4 + 4 + 8 + 4
  bytes a parameter; FSDP shards all four over ``gpus`` (DDP keeps them whole);
- activations: what the graph keeps for backward, at the autocast dtype (bf16 weights stand in for
  autocast: matmuls, attention and MLPs keep bf16; norms keep fp32 in both). With activation
  checkpointing the graph keeps each block's inputs, plus one block's activations while it is recomputed;
- the rollout KV cache at play (batch 1, the preset's window, bf16), for serving;
- the tokenizer's weights, which a dynamics run holds frozen.

The estimate leaves out the allocator's slack and the CUDA context (~0.5-1 GiB). ``tests/training/
test_footprint.py`` checks it against the real peak of a small config on this CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..models.dit import CausalDiT, DynamicsConfig

BYTES_PER_PARAM = {"weights": 4, "grads": 4, "optimizer": 8, "ema": 4}


@dataclass
class Footprint:
    """One device's memory for a dynamics training step, in bytes (see the module docstring)."""

    params: int
    tokens_per_frame: int
    weights: int
    grads: int
    optimizer: int
    ema: int
    activations: int
    kv_cache_play: int
    tokenizer_weights: int

    @property
    def total(self) -> int:
        return self.weights + self.grads + self.optimizer + self.ema + self.activations + self.tokenizer_weights

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


class _FusedAttention(torch.autograd.Function):
    """Attention that keeps for backward what the fused SDPA kernels keep (q, k, v, output, log-sum-exp),
    where the meta device, which has no fused kernels, would count the math path's (B, H, L, L) weights."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[:-1], dtype=torch.float32))
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q, k, v, _, _ = ctx.saved_tensors
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v), None


def _fused_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return _FusedAttention.apply(q, k, v, mask)


def saved_activation_bytes(dit: CausalDiT, batch: int, frames: int, dtype: torch.dtype, streams: int = 2,
                           device: torch.device | str = "meta") -> int:
    """Bytes the autograd graph keeps for backward after one training forward of ``dit`` (each storage once).

    ``streams`` = 2 is the 'clean' context recipe (a clean past beside the noised targets), 1 diffusion forcing."""
    c, s = dit.cfg.latent_channels, dit.cfg.latent_size
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        kept[st._cdata] = st.nbytes()
        return t

    from unittest import mock

    from ..models import block as block_module

    with torch.device(device), mock.patch.object(block_module, "attend", _fused_attend):
        x = torch.randn(batch, frames, c, s, s, dtype=dtype)
        t = torch.rand(batch, frames)
        a = torch.zeros(batch, frames, dtype=torch.long)
        ax = torch.zeros(batch, frames, dit.cfg.n_axes) if dit.cfg.n_axes else None
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            ctx = (x, t) if streams == 2 else (None, None)
            out = dit(x, t, a, ctx=ctx[0], ctx_t=ctx[1], axes=ax)
            out.float().square().mean()
    return sum(kept.values())


def estimate(cfg: DynamicsConfig, batch: int, frames: int, *, precision: str = "bf16", checkpointing: bool = False,
             gpus: int = 1, parallel: str = "ddp", streams: int = 2, window: int = 8, vae_params: int = 0) -> Footprint:
    """Memory per device of a dynamics training step at ``batch`` clips of ``frames`` frames per device."""
    if parallel not in ("ddp", "fsdp"):
        raise ValueError(f"parallel must be 'ddp' or 'fsdp', got {parallel!r}")
    if batch < 1 or frames < 1 or gpus < 1:
        raise ValueError(f"batch, frames and gpus must be >= 1, got {batch}, {frames}, {gpus}")
    if frames > cfg.max_frames:
        raise ValueError(f"frames {frames} exceeds the model's max_frames {cfg.max_frames}")
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    with torch.device("meta"):
        dit = CausalDiT(cfg).to(dtype)
    n = sum(p.numel() for p in dit.parameters())
    full = saved_activation_bytes(dit, batch, frames, dtype, streams)
    if checkpointing:
        dit.set_checkpointing(True)
        acts = saved_activation_bytes(dit, batch, frames, dtype, streams) + full // cfg.depth
    else:
        acts = full
    shard = gpus if parallel == "fsdp" else 1
    per = {k: -(-b * n // shard) for k, b in BYTES_PER_PARAM.items()}
    kv = cfg.depth * 2 * (window + 1) * cfg.n_tok * cfg.dim * 2
    return Footprint(params=n, tokens_per_frame=cfg.n_tok, activations=acts, kv_cache_play=kv, tokenizer_weights=4 * vae_params,
                     **per)


def gib(b: int) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**28 else f"{b / 2**20:.1f} MiB"


def preset_report(name: str, batch: int | None = None, frames: int | None = None, gpus: int = 1,
                  parallel: str = "ddp") -> dict[str, Any]:
    """:func:`estimate` for the dynamics run of preset ``name`` (its batch, clip length, precision,
    checkpointing and window unless given), and on a CUDA machine one timed training step's real peak."""
    import time

    from ..models.vae import VAE
    from ..recipes import presets

    pr = presets.get(name)
    batch = batch or pr.train.batch_size
    frames = frames or pr.recipe.clip_len
    streams = 2 if pr.recipe.context == "clean" else 1
    with torch.device("meta"):
        vae_params = sum(p.numel() for p in VAE(pr.vae).parameters())
    precision = "fp32" if pr.train.precision == "fp32" else "bf16"
    fp = estimate(pr.dynamics, batch, frames, precision=precision, checkpointing=pr.train.checkpointing, gpus=gpus,
                  parallel=parallel, streams=streams, window=int(pr.sim.get("window", 8)), vae_params=vae_params)
    out: dict[str, Any] = {"preset": name, "batch_per_device": batch, "frames": frames, "streams": streams, "precision": precision,
                           "checkpointing": pr.train.checkpointing, "gpus": gpus, "parallel": parallel,
                           "frame_px": pr.vae.frame_size, "tokenizer_params": vae_params, **fp.as_dict(),
                           "activations_per_sample": fp.activations // batch}
    if torch.cuda.is_available():  # one real step: its time and the allocator's peak
        dev = torch.device("cuda")
        dit = CausalDiT(pr.dynamics).to(dev)
        dit.set_checkpointing(pr.train.checkpointing)
        opt = torch.optim.AdamW(dit.parameters(), lr=1e-4, fused=True)
        c, s = pr.dynamics.latent_channels, pr.dynamics.latent_size
        x = torch.randn(batch, frames, c, s, s, device=dev)
        t = torch.rand(batch, frames, device=dev)
        a = torch.zeros(batch, frames, dtype=torch.long, device=dev)
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(3):  # the first step pays for kernel selection
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = dit(x, t, a, ctx=x if streams == 2 else None, ctx_t=t if streams == 2 else None).float().square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        out["cuda"] = {"device": torch.cuda.get_device_name(0), "step_s": round(times[-1], 4),
                       "peak_allocated": torch.cuda.max_memory_allocated(), "clips_per_s": round(batch / times[-1], 2)}
    return out
