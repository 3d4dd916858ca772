"""Presets: one named set of configs per size of machine, for every ``worldloom train`` command.

    worldloom train tokenizer --preset gpu-small ...      worldloom doctor --preset gpu

A preset fixes the tokenizer, the dynamics model, their training, the sampler defaults and the
temporal decoder; every ``--vae-*``/``--dyn-*``/``--train-*`` option still overrides one field. The
table in ``docs/BENCHMARKS.md`` ("Presets") gives each one's parameters, tokens per frame and memory
per sample (from ``worldloom doctor``).

- ``cpu``: the arena recipe (:mod:`worldloom.recipes.arena`): 64 px, 7.5 M parameters, 16 tokens a
  frame; about two hours from nothing on 2 cores.
- ``tiny``: a very small model and a few steps, for tests.
- ``gpu-small``: 128 px, a x8 tokenizer with 16 latent channels, 64 tokens a frame (patch 2 on the
  16x16 latent: the finer grid that moved the ball in the objects arms, docs/BENCHMARKS.md), a ~49 M
  DiT (dim 512, 10 blocks), 16-frame clips. Expects ~1 M frames (e.g. 3,000 episodes of 300 frames).
- ``gpu``: 256 px, the same tokenizer shape at twice the size (32x32 latent, 256 tokens a frame), a
  ~307 M DiT (dim 1024, 16 blocks). Expects ~10 M frames.

The GPU presets train in bf16 autocast with fused AdamW, activation checkpointing per block and
``torch.compile``; each of those switches off on a CPU (training/loop.py), so a preset runs anywhere.
This module imports no torch until a preset is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMES = ("cpu", "tiny", "gpu-small", "gpu")
ABOUT = {
    "cpu": "the arena recipe's configs (worldloom.recipes.arena, ~two hours on 2 cores)",
    "tiny": "very small model and a few steps, for tests",
    "gpu-small": "128 px, 64 tokens/frame, ~49 M DiT; expects ~1 M frames",
    "gpu": "256 px, 256 tokens/frame, ~307 M DiT; expects ~10 M frames",
}


@dataclass(frozen=True)
class Preset:
    """Every config a preset fixes (the dataclasses of the modules that use them)."""

    name: str
    vae: Any  # VAEConfig
    vae_train: Any  # TrainConfig
    dynamics: Any  # DynamicsConfig
    recipe: Any  # DynamicsRecipe
    train: Any  # TrainConfig
    sim: dict[str, Any]  # SimConfig fields
    td: Any  # TemporalDecoderConfig
    td_recipe: Any  # TemporalDecoderRecipe
    td_train: Any  # TrainConfig


def get(name: str) -> Preset:
    """The preset called ``name`` (one of :data:`NAMES`); a KeyError naming the known ones otherwise."""
    if name not in NAMES:
        raise KeyError(f"preset {name!r}: unknown; known: {', '.join(NAMES)}")
    from dataclasses import replace

    from ..models.dit import DynamicsConfig
    from ..models.temporal_decoder import TemporalDecoderConfig
    from ..models.vae import VAEConfig
    from ..training.dynamics import DynamicsRecipe
    from ..training.loop import TrainConfig
    from ..training.temporal_decoder import TD_TRAIN, TemporalDecoderRecipe

    if name == "cpu":
        from . import arena

        return Preset(name, arena.VAE_CFG, arena.VAE_TRAIN, arena.DYN_CFG, arena.DYN_RECIPE, arena.DYN_TRAIN,
                      dict(arena.STAGES.sim_defaults), TemporalDecoderConfig(), TemporalDecoderRecipe(), TD_TRAIN)
    if name == "tiny":
        quick = TrainConfig(steps=4, batch_size=4, lr=1e-3, warmup=1, ema_decay=0.9, precision="fp32", log_every=1, ckpt_every=1000)
        return Preset(
            name, VAEConfig(frame_size=64, latent_channels=4, downsample=4, width=16, blocks=1), quick,
            DynamicsConfig(latent_channels=4, latent_size=16, patch=4, dim=32, depth=1, heads=2, mlp_ratio=2.0,
                           n_actions=5, max_frames=8, prev_halo=1, conv=3, pred="delta"),
            DynamicsRecipe(clip_len=4, loss="x0"), replace(quick, batch_size=2),
            {"steps": 2, "window": 8, "sink": 0, "context_noise": 0.0},
            TemporalDecoderConfig(width=8, blocks=1), TemporalDecoderRecipe(rollouts=4, horizon=3, batch=2), replace(quick, steps=3))
    # gpu-small and gpu: one shape at two sizes (x8 tokenizer, 16 latent channels, patch 2, 16-frame clips).
    frame, dim, depth, heads = {"gpu-small": (128, 512, 10, 8), "gpu": (256, 1024, 16, 16)}[name]
    vae = VAEConfig(frame_size=frame, latent_channels=16, downsample=8, width=128, blocks=2)
    fast = {"precision": "auto", "fused": True, "compile": True}
    return Preset(
        name, vae,
        TrainConfig(steps=50_000, batch_size=64, lr=5e-4, warmup=1_000, ema_decay=0.999, ckpt_every=2_000, **fast),
        DynamicsConfig(latent_channels=16, latent_size=vae.latent_size, patch=2, dim=dim, depth=depth, heads=heads,
                       n_actions=5, max_frames=16, prev_frame=True, prev_halo=1, conv=3, pred="delta"),
        DynamicsRecipe(clip_len=16, context="clean", t_shift=3.0, loss="x0"),
        TrainConfig(steps=200_000, batch_size=32, lr=3e-4, warmup=2_000, ema_decay=0.9995, ckpt_every=2_000,
                    checkpointing=True, **fast),
        {"steps": 4, "window": 12, "sink": 0, "context_noise": 0.0},
        TemporalDecoderConfig(), TemporalDecoderRecipe(), TD_TRAIN,
    )
