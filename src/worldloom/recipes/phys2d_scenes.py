"""Reproduce ``checkpoints/phys2d-{scene}``: one phys2d model per scene, as PhyWorld trains them.

    python -m worldloom.recipes.phys2d_scenes --threads 1      (= make train-phys2d-scenes)

Each scene's model is the mixed ``checkpoints/phys2d`` fine-tuned (``train_dynamics(init=...)``) on
600 episodes of that scene alone, with the same tokenizer, architecture and recipe. Why: from 4
context frames the mixed model must tell a parabola (initial vertical speed 0, 0.7 px of fall by
frame 3) from uniform motion; it hedged, and on 5 of 16 parabola episodes generated no gravity at
all (vertical acceleration ~0 vs 0.10-0.16 px/frame^2 true), and on one uniform episode full
gravity (docs/BENCHMARKS.md). PhyWorld (Kang et al. 2024) trains a separate model per scene, so a
per-scene model is the protocol, not a shortcut. Score them with
``worldloom eval --checkpoint phys2d --suite physics --physics-checkpoint 'phys2d-{scene}'``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from ..data.collect import collect
from ..envs.phys2d import SCENARIOS
from ..training.dynamics import train_dynamics
from ..training.loop import TrainConfig
from . import phys2d
from .common import parse, recipe_parser, scaled

EPISODES, FRAMES = 600, 32
# First episode seed per scene: apart from the mixed set (0..), its held-out set (500,000..) and every eval seed.
SEEDS = {"parabola": 200_000, "uniform": 210_000, "collision": 220_000}
# A fine-tune: a lower peak rate than from scratch, a short warm-up. Gravity takes longer to get right.
FT_TRAIN = TrainConfig(steps=500, batch_size=16, lr=5e-4, warmup=20, ema_decay=0.995, ckpt_every=100, seed=0)
STEPS = {"uniform": 500, "parabola": 1000, "collision": 500}
# Context noise at run time (GameNGen-style): 0.05, chosen on physics episodes from seed 3,000,000 (not
# the suite's 1,000,000+); parabola 2.31x -> 2.02x the floor there, uniform and collision unchanged.
SIM = {**phys2d.STAGES.sim_defaults, "context_noise": 0.05}


def main(argv: list[str] | None = None) -> None:
    p = recipe_parser(__doc__, "checkpoints/phys2d-{scene}", "runs/phys2d-scenes")
    p.add_argument("--base", default="checkpoints/phys2d", help="the mixed phys2d model to fine-tune (default: %(default)s)")
    p.add_argument("--scenes", default=",".join(SCENARIOS), help="comma-separated scenes (default: all three)")
    args, cmd = parse(p, "worldloom.recipes.phys2d_scenes", argv)
    scenes = [s.strip() for s in args.scenes.split(",") if s.strip()]
    bad = [s for s in scenes if s not in SCENARIOS]
    if bad or "{scene}" not in args.out:
        p.error(f"--scenes must be among {list(SCENARIOS)} (got {bad}) and --out must contain '{{scene}}'")
    work, times = Path(args.work), {}
    for sc in scenes:
        train = scaled(replace(FT_TRAIN, steps=STEPS[sc]), args.scale, args.threads)
        t = time.time()
        data = work / f"data-{sc}"
        if not (data / "meta.json").exists() or not args.resume:
            collect("phys2d", data, episodes=max(2, int(EPISODES * args.scale)), steps=FRAMES, policy="random",
                    seed=SEEDS[sc], env_kwargs={"scenario": sc, "distribution": "id"}, overwrite=True)
        train_dynamics(data, args.base, args.out.replace("{scene}", sc), phys2d.STAGES.dynamics,
                       phys2d.STAGES.dyn_recipe, train, sim_defaults=SIM, resume=args.resume, recipe_cmd=cmd,
                       run_dir=work / f"run-{sc}", init=args.base, extra_config={"scene": sc},
                       until=args.stop_at or None)
        times[f"{sc}_s"] = round(time.time() - t, 1)
        print(json.dumps({"scene": sc, "seconds": times[f"{sc}_s"]}), flush=True)
    print(json.dumps({"times_s": times, "total_min": round(sum(times.values()) / 60, 1)}), flush=True)


if __name__ == "__main__":
    main()
