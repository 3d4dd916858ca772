"""Reproduce ``checkpoints/arena-base``: collect data, train the tokenizer, train the dynamics model.

    python -m worldloom.recipes.arena --out checkpoints/arena-base --work runs/arena-smooth --control smooth
    (= the first step of make train-arena)

``--control`` picks the arena's control law (:class:`~worldloom.envs.arena.ArenaConfig`): the shipped
``arena-base`` was trained in the first worlds' ``smooth`` one; the default is the current ``accel``
world. The shipped ``checkpoints/arena`` is this model's few-step student, moved to the ``accel``
world by fine-tuning (``make distill-arena``).

Sized for a 2-core CPU in under 90 minutes; ``--scale`` multiplies the data and step counts (for
a GPU or a quick smoke run, e.g. ``--scale 0.01``). Every stage's wall time goes into the card.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..data.collect import collect
from ..models.dit import DynamicsConfig
from ..models.vae import VAEConfig
from ..training.dynamics import DynamicsRecipe
from ..training.loop import TrainConfig
from .common import Stages, parse, recipe_parser, run_stages

TRAIN_SEED, HELDOUT_SEED = 0, 100_000  # held-out episodes never share a layout seed with training

VAE_CFG = VAEConfig(frame_size=64, latent_channels=8, downsample=4, width=48, blocks=2)
VAE_TRAIN = TrainConfig(steps=3200, batch_size=32, lr=1e-3, warmup=100, ema_decay=0.998, ckpt_every=500, seed=0)
# 16 tokens/frame (patch 4 on the 16x16 latent): 4.5x the training throughput of patch 2 on this CPU
# and the budget real-time play needs. Frame stacking with a one-cell halo puts a camera step inside
# every token's input, a depthwise conv in the MLPs mixes neighbours, and the head predicts the change
# from the previous frame (an untrained model copies it). See docs/BENCHMARKS.md for what each bought.
DYN_CFG = DynamicsConfig(latent_channels=8, latent_size=16, patch=4, dim=256, depth=6, heads=4, n_actions=5, max_frames=8,
                         prev_frame=True, prev_halo=1, conv=3, pred="delta")
# t_shift 3: most training noise levels are high, where only the past (not the noisy frame itself)
# tells the model what comes next. x0 loss: every noise level weighs alike, as few-step sampling needs.
DYN_RECIPE = DynamicsRecipe(clip_len=8, context="clean", t_shift=3.0, ctx_noise_max=0.2, ctx_noise_prob=0.5,
                            action_dropout=0.1, loss="x0")
DYN_TRAIN = TrainConfig(steps=2400, batch_size=16, lr=1e-3, warmup=100, ema_decay=0.995, ckpt_every=100, seed=0)
# Play, eval and bench default to 1 sampler step, int8 linear layers and a bf16 decoder: the fastest
# setting measured over a WebSocket on one thread, within 0.1 dB of 2 fp32 steps (docs/BENCHMARKS.md).
STAGES = Stages(VAE_CFG, VAE_TRAIN, DYN_CFG, DYN_RECIPE, DYN_TRAIN,
                 sim_defaults={"steps": 1, "window": 8, "sink": 0, "context_noise": 0.0},
                 speed={"precision": "int8", "vae_precision": "bf16", "compile": False})


def main(argv: list[str] | None = None) -> None:
    p = recipe_parser(__doc__, "checkpoints/arena-base", "runs/arena")
    p.add_argument("--control", choices=("accel", "smooth"), default="accel",
                   help="the arena's control law for the data (default: %(default)s; arena-base: smooth)")
    args, cmd = parse(p, "worldloom.recipes.arena", argv)
    work, s, env_kwargs = Path(args.work), args.scale, {"control": args.control}
    t = time.time()
    train_data, held_data = work / "data-train", work / "data-heldout"
    if not (train_data / "meta.json").exists() or not args.resume:
        collect("arena", train_data, episodes=max(2, int(120 * s)), steps=300, seed=TRAIN_SEED,
                env_kwargs=env_kwargs, overwrite=True)
    if not (held_data / "meta.json").exists() or not args.resume:
        collect("arena", held_data, episodes=50, steps=64, seed=HELDOUT_SEED,
                env_kwargs=env_kwargs, overwrite=True)
    run_stages(args, cmd, STAGES, train_data, held_data, {"collect_s": time.time() - t})


if __name__ == "__main__":
    main()
