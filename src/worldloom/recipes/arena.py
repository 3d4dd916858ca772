"""An arena world model from nothing in one command: collect, tokenizer, dynamics, few-step student.

    python -m worldloom.recipes.arena --out runs/arena-recipe/checkpoint --work runs/arena-recipe   (= make train-arena)

Every stage trains inside ``--work`` from what the earlier stages made there; no earlier checkpoint
or world is used. ``--only STAGE`` reruns one stage (the card lists each stage's exact command, data
and wall time). ``--scale`` multiplies the data and step counts (``--scale 0.01`` for a smoke run, > 1
on a GPU).

Key choices (measurements in docs/BENCHMARKS.md, "Objects"):

- **The play world** (256 px, 4 balls, 14 landmarks, the 'accel' control law): the world
  ``checkpoints/arena`` plays. A ball-dense 128 px world (6 balls at 2-4 px/step) scored its balls below
  copy-last all the same: density bought nothing, and its model played a world that is not the bundled one.
- **Pong's dynamics head**: a flow head (``pred="warp"``: per latent cell, where to resample the previous
  latent from, plus a residual) and a conv refiner that sees the two last latent frames (``head_conv=64``,
  ``prev_frames=2``). The same DiT trained by ``make train-pong``'s command draws Pong's sub-pixel ball in
  88 % of test frames; on the play world, 2,500 steps of it from nothing plus the 200-step student below
  (45.6 min of dynamics on 2 threads, on the shipped tokenizer) match or beat the shipped ``arena``, whose
  chain ran through earlier worlds for hours, on every validation score but false objects (PSNR h1-32
  21.92 against 21.57 dB, balls h1-8 38.5 against 31.9 %, following h1-8 97.0 against 95.8 %). The balls
  still do not move (their motion followed on 16 % of moving steps): no recipe tried on this CPU moves them.
- **16 tokens/frame** (patch 4 on the 16x16 latent): 4.5x the training throughput of patch 2 on this CPU
  and the budget real-time play needs. Frame stacking with a one-cell halo puts a camera step inside
  every token's input, and a depthwise conv in the MLPs mixes neighbours.
- **t_shift 3, x0 loss**: most training noise levels are high, where only the past tells the model what
  comes next; x0 weighs every noise level alike, as few-step sampling needs.
- **Student**: 1 sampler step, trained 200 steps on its own KV-cached rollouts against the truth and the
  teacher's 4-step sample (:mod:`worldloom.training.distill`). It is what holds long rollouts: the teacher
  alone draws false objects in 13 % of frames by h = 32, the student in 1.2 %. Play, eval and bench
  default to 1 step, int8 linear layers and a bf16 decoder: the fastest setting measured over a WebSocket.
- **Not yet run whole**: its own tokenizer takes 15.7 min (3,200 steps, 38.2 dB held-out), and the stages
  above were measured on the shipped tokenizer. Its output replaces ``checkpoints/arena`` only once a whole
  run is scored on validation and test.
"""

from __future__ import annotations

from ..models.dit import DynamicsConfig
from ..models.vae import VAEConfig
from ..training.distill import DistillRecipe
from ..training.dynamics import DynamicsRecipe
from ..training.loop import TrainConfig
from .common import Collect, Stages, Student, parse, recipe_parser, run_recipe

TRAIN_SEED, HELDOUT_SEED = 0, 100_000  # held-out episodes never share a layout seed with training
# Validation (every choice is made on it) and test (reported once) layouts: see the Makefile.
VAL_SEED, TEST_SEED = 8_000_000, 9_000_000
# The world (see the module docstring): the play world, every other field at ArenaConfig's default.
ENV_KWARGS: dict = {"control": "accel"}
OBJECT_WEIGHT = 0.0  # see the module docstring

VAE_CFG = VAEConfig(frame_size=64, latent_channels=8, downsample=4, width=48, blocks=2)
VAE_TRAIN = TrainConfig(steps=3200, batch_size=32, lr=1e-3, warmup=100, ema_decay=0.998, ckpt_every=500, seed=0)
DYN_CFG = DynamicsConfig(latent_channels=8, latent_size=16, patch=4, dim=256, depth=6, heads=4, n_actions=5, max_frames=8,
                         prev_frame=True, prev_halo=1, conv=3, pred="warp", prev_frames=2, head_conv=64)
DYN_RECIPE = DynamicsRecipe(clip_len=8, context="clean", t_shift=3.0, ctx_noise_max=0.2, ctx_noise_prob=0.5,
                            action_dropout=0.1, loss="x0", object_weight=OBJECT_WEIGHT)
DYN_TRAIN = TrainConfig(steps=2500, batch_size=16, lr=1e-3, warmup=100, ema_decay=0.995, ckpt_every=100, seed=0)
STUDENT = Student(DistillRecipe(student_steps=1, w_true=0.5, object_weight=OBJECT_WEIGHT),
                  TrainConfig(steps=200, batch_size=16, lr=2e-4, warmup=15, ema_decay=0.98, ckpt_every=25, log_every=10),
                  sim_steps=1)
STAGES = Stages(VAE_CFG, VAE_TRAIN, DYN_CFG, DYN_RECIPE, DYN_TRAIN,
                sim_defaults={"steps": 1, "window": 8, "sink": 0, "context_noise": 0.0},
                speed={"precision": "int8", "vae_precision": "bf16", "compile": False},
                collect=(Collect("train", "arena", 120, 300, TRAIN_SEED, ENV_KWARGS),
                         Collect("heldout", "arena", 50, 64, HELDOUT_SEED, ENV_KWARGS, scaled=False)),
                student=STUDENT)


def main(argv: list[str] | None = None) -> None:
    args, cmd = parse(recipe_parser(__doc__, "runs/arena-recipe/checkpoint", "runs/arena-recipe"), "worldloom.recipes.arena", argv)
    run_recipe(args, cmd, "worldloom.recipes.arena", STAGES)


if __name__ == "__main__":
    main()
