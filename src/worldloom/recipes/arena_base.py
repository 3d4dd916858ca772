"""Reproduce ``checkpoints/arena-base``: the first worlds' foundation model (tokenizer + many-step dynamics).

    python -m worldloom.recipes.arena_base --out checkpoints/arena-base --work runs/arena-smooth
    (= the first step of make train-arena-chain)

Trained in the arena's first-worlds ``smooth`` control law, with whole-frame losses. It is the root
of the chain that made the shipped ``checkpoints/arena`` (``make train-arena-chain``: its students,
then a fine-tune into the current ``accel`` world). :mod:`worldloom.recipes.arena` is the recipe
that rebuilds an arena model from nothing in one command.
"""

from __future__ import annotations

from .arena import DYN_CFG, VAE_CFG, VAE_TRAIN
from .common import Collect, Stages, parse, recipe_parser, run_recipe
from ..training.dynamics import DynamicsRecipe
from ..training.loop import TrainConfig

ENV_KWARGS = {"control": "smooth"}
DYN_RECIPE = DynamicsRecipe(clip_len=8, context="clean", t_shift=3.0, ctx_noise_max=0.2, ctx_noise_prob=0.5,
                            action_dropout=0.1, loss="x0")
DYN_TRAIN = TrainConfig(steps=2400, batch_size=16, lr=1e-3, warmup=100, ema_decay=0.995, ckpt_every=100, seed=0)
STAGES = Stages(VAE_CFG, VAE_TRAIN, DYN_CFG, DYN_RECIPE, DYN_TRAIN,
                sim_defaults={"steps": 1, "window": 8, "sink": 0, "context_noise": 0.0},
                speed={"precision": "int8", "vae_precision": "bf16", "compile": False},
                collect=(Collect("train", "arena", 120, 300, 0, ENV_KWARGS),
                         Collect("heldout", "arena", 50, 64, 100_000, ENV_KWARGS, scaled=False)))


def main(argv: list[str] | None = None) -> None:
    p = recipe_parser(__doc__, "checkpoints/arena-base", "runs/arena-smooth")
    args, cmd = parse(p, "worldloom.recipes.arena_base", argv)
    run_recipe(args, cmd, "worldloom.recipes.arena_base", STAGES)


if __name__ == "__main__":
    main()
