"""Reproduce ``checkpoints/phys2d``: an action-free world model of PhyWorld's 2-D physics scenes.

    python -m worldloom.recipes.phys2d --out checkpoints/phys2d      (= make train-phys2d)

Collects in-distribution phys2d episodes (uniform motion, parabola and collision, mixed; 32 frames
each, only the noop action), trains the tokenizer and then the dynamics model with the same
pipeline as the arena (:mod:`worldloom.recipes.arena`). The physics suite
(``python -m worldloom.eval.physics --checkpoint checkpoints/phys2d``) scores it against the floor.

Sized for a 2-core CPU in about 25 minutes (tokenizer ~0.27 s/step at batch 32; dynamics at 16
tokens per frame ~1-1.5 s/step at batch 16 when sharing the cores); ``--scale`` multiplies the data
and step counts (``--scale 0.01`` for a smoke run, > 1 on a GPU). Every stage's wall time goes into
the checkpoint's config.
"""

from __future__ import annotations

from ..models.dit import DynamicsConfig
from ..models.vae import VAEConfig
from ..training.dynamics import DynamicsRecipe
from ..training.loop import TrainConfig
from .common import Collect, Stages, parse, recipe_parser, run_recipe

TRAIN_SEED, HELDOUT_SEED = 0, 500_000  # the physics suite draws its episodes from 1,000,000 on
EPISODES, HELDOUT_EPISODES, FRAMES = 800, 40, 32
ENV_KWARGS = {"scenario": "mixed", "distribution": "id"}  # training never sees the ood ranges

VAE_CFG = VAEConfig(frame_size=64, latent_channels=8, downsample=4, width=48, blocks=2)
VAE_TRAIN = TrainConfig(steps=1000, batch_size=32, lr=1e-3, warmup=100, ema_decay=0.998, ckpt_every=400, seed=0)
# The arena's current direction: 4x4 latent patches (16 tokens per frame), 'delta' head (an untrained
# model copies the last frame), depthwise conv in the MLPs, frame stacking; x0 loss for few-step sampling.
DYN_CFG = DynamicsConfig(latent_channels=8, latent_size=16, patch=4, dim=256, depth=6, heads=4, n_actions=1,
                         max_frames=8, prev_frame=True, prev_halo=1, pred="delta", conv=3)
# Action-free: every frame's action is the noop, so there is nothing to drop.
DYN_RECIPE = DynamicsRecipe(clip_len=8, context="clean", t_shift=3.0, ctx_noise_max=0.2, ctx_noise_prob=0.5,
                            action_dropout=0.0, loss="x0")
DYN_TRAIN = TrainConfig(steps=2000, batch_size=16, lr=1e-3, warmup=100, ema_decay=0.995, ckpt_every=100, seed=0)
STAGES = Stages(VAE_CFG, VAE_TRAIN, DYN_CFG, DYN_RECIPE, DYN_TRAIN,
                 sim_defaults={"steps": 2, "window": 8, "sink": 0, "context_noise": 0.0},
                 collect=(Collect("train", "phys2d", EPISODES, FRAMES, TRAIN_SEED, ENV_KWARGS, policy="random"),
                          Collect("heldout", "phys2d", HELDOUT_EPISODES, FRAMES, HELDOUT_SEED, ENV_KWARGS,
                                  policy="random", scaled=False)))


def main(argv: list[str] | None = None) -> None:
    args, cmd = parse(recipe_parser(__doc__, "checkpoints/phys2d", "runs/phys2d"), "worldloom.recipes.phys2d", argv)
    run_recipe(args, cmd, "worldloom.recipes.phys2d", STAGES)


if __name__ == "__main__":
    main()
