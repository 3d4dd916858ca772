"""What every recipe shares: the command line, step scaling, and the tokenizer -> dynamics stages.

A recipe module (``arena``, ``phys2d``) only says which data to collect and which configs to train;
``run_stages`` trains the tokenizer and then the dynamics model exactly the same way for all of
them, timing each stage into the checkpoint's config and printing one JSON line at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.dit import DynamicsConfig
from ..models.vae import VAEConfig
from ..training.dynamics import DynamicsRecipe, train_dynamics
from ..training.loop import TrainConfig
from ..training.tokenizer import train_tokenizer


@dataclass
class Stages:
    """The two training stages of a recipe and the sampler defaults written into its checkpoint."""

    vae: VAEConfig
    vae_train: TrainConfig
    dynamics: DynamicsConfig
    dyn_recipe: DynamicsRecipe
    dyn_train: TrainConfig
    sim_defaults: dict[str, Any] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)  # load()'s default speed-ups (runtime/speed.py)


def recipe_parser(doc: str, out: str, work: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=out, help=f"checkpoint directory to write (default: {out})")
    p.add_argument("--work", default=work, help=f"where data and training state go (default: {work})")
    p.add_argument("--scale", type=float, default=1.0, help="multiply episodes and steps (smoke runs: 0.01)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --work (reuses its data)")
    p.add_argument("--stop-at", type=int, default=0,
                   help="stop the dynamics run after this step of the same schedule and export the EMA there "
                        "(default: 0 = the full schedule)")
    return p


def parse(p: argparse.ArgumentParser, module: str, argv: list[str] | None) -> tuple[argparse.Namespace, str]:
    """Parsed args and the exact command line that goes into the model card."""
    args = p.parse_args(argv)
    if args.scale <= 0:
        p.error(f"--scale must be > 0, got {args.scale}")
    cmd = f"python -m {module} " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    return args, cmd.strip()


def scaled(cfg: TrainConfig, scale: float, threads: int) -> TrainConfig:
    """``cfg`` with its steps (and warm-up, for tiny runs) multiplied by ``scale``."""
    steps = max(2, int(cfg.steps * scale))
    return dataclasses.replace(cfg, steps=steps, threads=threads, warmup=min(cfg.warmup, max(1, steps // 4)))


def run_stages(args: argparse.Namespace, cmd: str, stages: Stages, train_data: Path, held_data: Path,
               times: dict[str, float]) -> dict[str, float]:
    """Train the tokenizer, then the dynamics model into ``args.out``; returns stage times (s)."""
    work = Path(args.work)
    t = time.time()
    tok = train_tokenizer(train_data, work / "tokenizer", stages.vae, scaled(stages.vae_train, args.scale, args.threads),
                          heldout=held_data, resume=args.resume, recipe=cmd, run_dir=work / "tokenizer-run")
    times["tokenizer_s"] = time.time() - t
    print(f"tokenizer: held-out reconstruction PSNR {tok.psnr:.2f} dB", flush=True)

    t = time.time()
    train_dynamics(train_data, work / "tokenizer", args.out, stages.dynamics, stages.dyn_recipe,
                   scaled(stages.dyn_train, args.scale, args.threads), sim_defaults=stages.sim_defaults,
                   resume=args.resume, recipe_cmd=cmd, run_dir=work / "dynamics-run",
                   extra_config={"stage_seconds": times, **({"speed": stages.speed} if stages.speed else {})},
                   until=args.stop_at or None)
    times["dynamics_s"] = time.time() - t
    total = sum(times.values())
    print(json.dumps({"times_s": {k: round(v, 1) for k, v in times.items()}, "total_min": round(total / 60, 1)}), flush=True)
    return times
