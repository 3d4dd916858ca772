"""The shipped arena world model from nothing in one command: collect, tokenizer, dynamics, refine, memory, student.

    python -m worldloom.recipes.arena --out runs/arena-recipe/checkpoint --work runs/arena-recipe --memory   (= make train-arena)

Every stage trains inside ``--work`` from what the earlier stages made there; no earlier checkpoint
or world is used. ``--only STAGE`` reruns one stage (the card lists each stage's exact command, data
and wall time). ``--scale`` multiplies the data and step counts (``--scale 0.01`` for a smoke run, > 1
on a GPU). ``--memory`` adds the memory stages (below; the shipped model has them), ``--decoder`` a temporal
decoder as a last stage. Stage by stage on the 2-core Xeon: 124 min (collect 0.3, tokenizer 22.9, dynamics
51.5, refine 7.8, memory 9.4, jitter 11.5, student 20.7, with other work beside some of them; without
``--memory``: 75 min); ``checkpoints/arena`` is its output.

Key choices (measurements in docs/BENCHMARKS.md, "Objects"):

- **The play world** (256 px, 4 balls, 14 landmarks, the 'accel' control law, balls at 0.5-1.5 px/step
  capped at 3: ArenaConfig's defaults). The same recipe on the earlier 1-3 px/step balls (cap 6) kept
  38 % of the balls seen in context over h1-8 on its test set, on these 74 % (copy-last 39 and 53 %): a
  slow ball stays where the model left it for longer, though the model moves it no better. A ball-dense
  128 px world (6 balls at 2-4 px/step) scored its balls below copy-last all the same: density bought nothing.
- **Pong's dynamics head**: a flow head (``pred="warp"``: per latent cell, where to resample the previous
  latent from, plus a residual) and a conv refiner that sees the two last latent frames (``head_conv=64``,
  ``prev_frames=2``). The same DiT trained by ``make train-pong``'s command draws Pong's sub-pixel ball in
  88 % of test frames. On the arena the whole recipe matches the earlier model, whose chain ran through
  earlier worlds for hours, on validation (PSNR h1-32 21.82 against 21.57 dB, balls h1-8 39.2 against
  31.9 %, following h1-8 96.8 against 95.8 %, landmarks h1-32 36.6 against 40.8 %). The balls still do
  not move (their motion followed on 16 % of moving steps): no recipe tried on this CPU moves them.
- **A refine stage pins the flow head to the scroll** (``REFINE``: 300 steps from the dynamics stage's
  weights, an L1 pull of each cell's flow to the whole-cell shift the true frame is explained by, the
  agent's 5x5 cells left out of that vote). Unpinned, the head blends two cells on 41 % of moving steps and
  smears landmarks and walls; the pinned student kept landmarks 8-9 points longer on validation. The same
  pull from the first step, in the dynamics stage, cost the student 1 dB at every horizon.
- **16 tokens/frame** (patch 4 on the 16x16 latent): 4.5x the training throughput of patch 2 on this CPU
  and the budget real-time play needs. Frame stacking with a one-cell halo puts a camera step inside
  every token's input, and a depthwise conv in the MLPs mixes neighbours.
- **t_shift 3, x0 loss**: most training noise levels are high, where only the past tells the model what
  comes next; x0 weighs every noise level alike, as few-step sampling needs.
- **Student**: 1 sampler step, trained 200 steps on its own KV-cached rollouts against the truth and the
  teacher's 4-step sample (:mod:`worldloom.training.distill`). It is what holds long rollouts: the teacher
  alone draws false objects in 13 % of frames by h = 32, the student in 1.8 %. Play, eval and bench
  default to 1 step, int8 linear layers and a bf16 decoder: 45-50 FPS, p95 25-28 ms over a WebSocket.
- **Memory stages with ``--memory``** (``MEMORY``; the shipped model): after refine, a copy gate grown in and 300
  steps with place memory and half the clips' window blinded (stage ``memory``), 300 more with a third of the memory
  frames placed 1-2 cells off (``jitter``), then the student with ``place_early`` memory in its rollouts and a
  teacher that sees it; the checkpoint plays with it, its pose from the odometry fit on the data. The two first
  stages paint the landmarks out of half the clips' windows (``memory_erase``, weight 20 on the cells memory must
  fill): trained on true windows only, no stage drew a landmark its window had lost even given the true frame as
  memory (1.7 %; with it 74 %). They also weigh 20x the cells where a memory frame shows a ball that has since
  moved (``memory_ghost_weight``): without it the student copied moved balls back in 12-15 % of revisit frames.
  The gate trains at 30x the trunk's lr (``lr_scale``): at 1x it opened alike on every cell, so the weight that
  stopped the balls halved the landmarks (44-49 % on return); at 30x it opens 0.38 on a moved ball's cells and
  0.79 on a lost landmark's. ``place_early`` recalls a place's earliest covering view first: the model's own views
  fade with age, and ``place_first`` (the most overlapping first) held a true frame on 17 % of steps h17-32, for
  landmarks h1-32 67.9 % on validation against 74.9 %. Revisits 32 / 128 / 512 frames away, 24 probes: 32.5 / 32.0 /
  33.3 dB static PSNR (its window alone 22.9 / 19.7 / 19.4), landmarks on return 86 / 78 / 91 %, no false object.
- **No temporal decoder by default.** ``--decoder`` trains one (width 24, 1 block, 3,000 steps: 11.7 min) on
  the student's rollouts: PSNR h1-32 24.46 dB (copy-last + 3.5) and landmarks h1-32 59.5 %, but the
  frames it copies leave trails of the agent and of landmarks (false objects in 6.6 % of frames), and play
  falls to 26.9 FPS, p95 58 ms: past the real-time and false-object targets, so it does not ship.
"""

from __future__ import annotations

import dataclasses

from ..models.dit import DynamicsConfig
from ..models.temporal_decoder import TemporalDecoderConfig
from ..models.vae import VAEConfig
from ..training.distill import DistillRecipe
from ..training.dynamics import DynamicsRecipe
from ..training.loop import TrainConfig
from ..training.temporal_decoder import TD_TRAIN, TemporalDecoderRecipe
from .common import Collect, Decoder, Memory, Refine, Stages, Student, parse, recipe_parser, run_recipe

TRAIN_SEED, HELDOUT_SEED = 0, 100_000  # held-out episodes never share a layout seed with training
# Validation (every choice is made on it) and test (reported once) layouts: see the Makefile.
VAL_SEED, TEST_SEED = 8_000_000, 9_000_000
# The world (see the module docstring): the play world, every other field at ArenaConfig's default
# (the collected data records each field whose default ever changed: envs.registry.ARENA_RECORDED).
ENV_KWARGS: dict = {"control": "accel"}
OBJECT_WEIGHT = 0.0  # no extra loss on moving cells: weight 10 kept fewer balls (docs/BENCHMARKS.md, "Objects", first session, arm B)

VAE_CFG = VAEConfig(frame_size=64, latent_channels=8, downsample=4, width=48, blocks=2)
VAE_TRAIN = TrainConfig(steps=3200, batch_size=32, lr=1e-3, warmup=100, ema_decay=0.998, ckpt_every=500, seed=0)
DYN_CFG = DynamicsConfig(latent_channels=8, latent_size=16, patch=4, dim=256, depth=6, heads=4, n_actions=5, max_frames=8,
                         prev_frame=True, prev_halo=1, conv=3, pred="warp", prev_frames=2, head_conv=64)
DYN_RECIPE = DynamicsRecipe(clip_len=8, context="clean", t_shift=3.0, ctx_noise_max=0.2, ctx_noise_prob=0.5,
                            action_dropout=0.1, loss="x0", object_weight=OBJECT_WEIGHT)
DYN_TRAIN = TrainConfig(steps=2500, batch_size=16, lr=1e-3, warmup=100, ema_decay=0.995, ckpt_every=100, seed=0)
# The refine stage (see the docstring): 300 steps pinning the flow head to the whole-cell scroll.
REFINE = Refine(dataclasses.replace(DYN_RECIPE, flow_pin=0.5, flow_pin_ignore=2),
                dataclasses.replace(DYN_TRAIN, steps=300, lr=3e-4, warmup=30, ema_decay=0.98))
STUDENT = Student(DistillRecipe(student_steps=1, w_true=0.5, object_weight=OBJECT_WEIGHT),
                  TrainConfig(steps=200, batch_size=16, lr=2e-4, warmup=15, ema_decay=0.98, ckpt_every=25, log_every=10),
                  sim_steps=1)
# The memory stages (--memory, which make train-arena passes; see the docstring): a copy gate grown in and trained with place memory and
# blinded windows, then with placement jitter; the student then plays its rollouts with place_early memory.
MEM_CFG = dataclasses.replace(DYN_CFG, mem_copy=True)
MEM_RECIPE = dataclasses.replace(REFINE.recipe, memory="place", ctx_blind=0.5, memory_erase=0.5,
                                 memory_erase_weight=20.0, memory_ghost_weight=20.0)
# The copy gate is new beside a trained trunk: at the trunk's lr it opened alike on every cell (0.34 on moved balls
# and 0.38 on landmarks the window lost), at 30x it tells them apart (0.38 and 0.79; docs/BENCHMARKS.md, "Memory").
MEM_TRAIN = dataclasses.replace(REFINE.train, lr=2e-4, warmup=20, lr_scale_prefix="mem_copy.", lr_scale=30.0)
MEMORY = Memory((Refine(MEM_RECIPE, MEM_TRAIN, "memory", MEM_CFG),
                 Refine(dataclasses.replace(MEM_RECIPE, memory_jitter=0.3), MEM_TRAIN, "jitter", MEM_CFG)),
                dataclasses.replace(STUDENT.recipe, memory="place_early", teacher_memory=True))
# The optional last stage (--decoder; see the docstring): the narrow, motion-compensated shape.
DECODER = Decoder(TemporalDecoderConfig(width=24, blocks=1), TemporalDecoderRecipe(), dataclasses.replace(TD_TRAIN, steps=3000))
STAGES = Stages(VAE_CFG, VAE_TRAIN, DYN_CFG, DYN_RECIPE, DYN_TRAIN,
                sim_defaults={"steps": 1, "window": 8, "sink": 0, "context_noise": 0.0},
                speed={"precision": "int8", "vae_precision": "bf16", "compile": False},
                collect=(Collect("train", "arena", 120, 300, TRAIN_SEED, ENV_KWARGS),
                         Collect("heldout", "arena", 50, 64, HELDOUT_SEED, ENV_KWARGS, scaled=False)),
                student=STUDENT, refine=REFINE, decoder=DECODER, memory=MEMORY)


def main(argv: list[str] | None = None) -> None:
    args, cmd = parse(recipe_parser(__doc__, "runs/arena-recipe/checkpoint", "runs/arena-recipe"), "worldloom.recipes.arena", argv)
    run_recipe(args, cmd, "worldloom.recipes.arena", STAGES)


if __name__ == "__main__":
    main()
