"""What every recipe shares: the command line, step scaling, and the collect -> tokenizer -> dynamics
(-> refine) (-> student) (-> decoder) stages.

A recipe module (``arena``, ``phys2d``) only declares its :class:`Stages`: which data to collect and
which configs to train. :func:`run_recipe` runs them the same way for all of them, from nothing:

- **One command per stage.** ``--only STAGE`` runs one stage against the work dir the earlier ones
  filled, so the card can name, for every stage, the exact command that rebuilds it, its data and its
  wall time (``config.json: rebuild``; a "Recipe" section in the card).
- **No chain through other checkpoints.** The tokenizer, the dynamics model, its refinement, the student
  and the temporal decoder are all trained inside ``--work``; the checkpoint written to ``--out`` is the
  last stage's.
- **A refinement is a stage of its own**: a short second run of the dynamics model from the first's
  weights, with its own recipe and schedule (the arena's flow pin; trained from the first step, the same
  loss cost the student 1 dB, docs/BENCHMARKS.md "Objects", nineteenth session).
- **Optional stages behind a flag**: ``--memory`` (refine stages that train long-term memory in, and the
  student with it) and ``--decoder`` (a temporal decoder last), each measured before it becomes a default.
- ``--scale`` multiplies training episodes and steps (``0.01``: a smoke run; > 1: a GPU).
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
from ..training.state import META
from ..training.tokenizer import train_tokenizer
from ..config import atomic_write_bytes, atomic_write_json, read_json


@dataclass
class Collect:
    """One dataset a recipe records: ``name`` is its folder under the work dir (``data-<name>``)."""

    name: str
    env: str
    episodes: int
    steps: int
    seed: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policy: str = "momentum"
    scaled: bool = True  # episodes follow --scale (held-out sets keep their size up to scale 1)


@dataclass
class Student:
    """The few-step student stage: :func:`worldloom.training.distill.distill` of the dynamics model."""

    recipe: Any  # DistillRecipe
    train: TrainConfig
    sim_steps: int | None = None


@dataclass
class Refine:
    """A refine stage: the model of the stage before trained on with its own recipe and schedule
    (:func:`worldloom.training.dynamics.train_dynamics` with ``init``); the student learns from the last one."""

    recipe: DynamicsRecipe
    train: TrainConfig
    name: str = "refine"
    dynamics: DynamicsConfig | None = None  # its own DynamicsConfig (e.g. a memory copy gate grown in); None: the recipe's


@dataclass
class Memory:
    """The memory stages (``--memory``): refine stages after the recipe's own that teach the model to read
    retrieved frames, and the student's recipe then (its rollouts play with the memory)."""

    stages: tuple[Refine, ...]
    student: Any  # DistillRecipe


@dataclass
class Decoder:
    """The temporal decoder stage: :func:`worldloom.training.temporal_decoder.train_temporal_decoder` trained on the
    rollouts of the stage before it (the student, else the dynamics model)."""

    cfg: Any  # TemporalDecoderConfig
    recipe: Any  # TemporalDecoderRecipe
    train: TrainConfig


@dataclass
class Stages:
    """A recipe: its datasets, its training stages and the sampler defaults written into its checkpoint.

    ``collect`` must name a ``train`` and a ``heldout`` dataset (the tokenizer's held-out score)."""

    vae: VAEConfig
    vae_train: TrainConfig
    dynamics: DynamicsConfig
    dyn_recipe: DynamicsRecipe
    dyn_train: TrainConfig
    sim_defaults: dict[str, Any] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)  # load()'s default speed-ups (runtime/speed.py)
    collect: tuple[Collect, ...] = ()
    student: Student | None = None
    refine: Refine | None = None  # between dynamics and student: a second run from the dynamics stage's weights
    decoder: Decoder | None = None  # run only with --decoder: the recipe's measured, optional last stage
    memory: Memory | None = None  # run only with --memory: the stages that train long-term memory in

    def refines(self, memory: bool = False) -> list[Refine]:
        """The refine stages in order (``memory``: with the memory stages; the recipe must declare them)."""
        if memory and self.memory is None:
            raise ValueError("--memory: this recipe declares no memory stages")
        return ([self.refine] if self.refine else []) + (list(self.memory.stages) if memory and self.memory else [])

    def names(self, decoder: bool = False, memory: bool = False) -> list[str]:
        """The stages in order; ``decoder``: with the temporal decoder stage, ``memory``: with the memory stages
        (the recipe must declare them)."""
        if decoder and self.decoder is None:
            raise ValueError("--decoder: this recipe declares no temporal decoder stage")
        return ["collect", "tokenizer", "dynamics"] + [r.name for r in self.refines(memory)] + \
            (["student"] if self.student else []) + (["decoder"] if decoder else [])

    def outputs(self, out: Path, work: Path, decoder: bool = False, memory: bool = False) -> dict[str, Path]:
        """Where each model stage writes: the last one to ``out``, the others inside ``work``."""
        model_stages = [n for n in self.names(decoder, memory) if n not in ("collect", "tokenizer")]
        return {n: out if n == model_stages[-1] else work / n for n in model_stages}


def recipe_parser(doc: str, out: str, work: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=out, help=f"checkpoint directory to write (default: {out})")
    p.add_argument("--work", default=work, help=f"where data and training state go (default: {work})")
    p.add_argument("--scale", type=float, default=1.0, help="multiply episodes and steps (smoke runs: 0.01)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --work (reuses its data)")
    p.add_argument("--only", default=None, help="run this one stage (collect, tokenizer, dynamics, refine, student, decoder, and "
                   "with --memory its stages) against the work dir the earlier stages filled (default: all, in order)")
    p.add_argument("--decoder", action="store_true",
                   help="also train the recipe's temporal decoder as the last stage (writes --out; the student then "
                        "stays in --work/student)")
    p.add_argument("--memory", action="store_true",
                   help="also train the recipe's memory stages after its refine stage, and the student with that memory on")
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


def _stage_cmd(module: str, args: argparse.Namespace, stage: str | None) -> str:
    """The exact command that (re)runs one stage of this recipe invocation (``stage`` None: all of them)."""
    opts = [f"--out {shlex.quote(str(args.out))}", f"--work {shlex.quote(str(args.work))}"]
    opts += [f"--scale {args.scale:g}"] if args.scale != 1 else []
    opts += [f"--threads {args.threads}"] if args.threads else []
    opts += [f"--stop-at {args.stop_at}"] if args.stop_at and stage == "dynamics" else []
    opts += ["--decoder"] if args.decoder else []  # where the stages before it write depends on it
    opts += ["--memory"] if args.memory else []
    return f"python -m {module} " + " ".join(opts + ([f"--only {stage}"] if stage else []))


def _earlier_training_s(run_dir: Path) -> float:
    """Training seconds a stage interrupted mid-run spent before this sitting, from its saved training state
    (0 when it has none); what those sittings spent outside training (e.g. encoding) is not counted."""
    f = run_dir / META
    return float(read_json(f).get("elapsed_s", 0.0)) if f.exists() else 0.0


def run_recipe(args: argparse.Namespace, cmd: str, module: str, stages: Stages) -> dict[str, Any]:
    """Run the recipe's stages (all, or ``args.only``) into ``args.work`` and ``args.out``; returns the record.

    Every stage that runs adds ``{"command", "data", "seconds"}`` under its name to ``config.json: rebuild.stages``
    of the final checkpoint and the card's "Recipe" section; ``--only`` keeps the other stages' entries, and
    ``--resume`` adds a stage's new wall time to what its earlier sittings took (for a stage interrupted
    before it finished, the training time its saved state holds).
    """
    from ..data.collect import collect

    memory = args.memory
    try:
        names = stages.names(args.decoder, memory)
    except ValueError as e:
        raise SystemExit(f"{module}: {e}") from None
    if args.only is not None and args.only not in names:
        raise SystemExit(f"--only {args.only!r}: this recipe's stages are {', '.join(names)}")
    todo = names if args.only is None else [args.only]
    work = Path(args.work)
    data = {c.name: work / f"data-{c.name}" for c in stages.collect}
    if "train" not in data or "heldout" not in data:
        raise ValueError(f"{module}: a recipe must collect a 'train' and a 'heldout' dataset, got {sorted(data)}")
    outs = stages.outputs(Path(args.out), work, args.decoder, memory)
    dyn_out = outs["dynamics"]
    refines = {r.name: r for r in stages.refines(memory)}
    phases = ["dynamics", *refines]  # each refine stage trains on from the one before it
    teacher = outs[phases[-1]]  # the last dynamics phase: what the student and the decoder build on
    speed = {"speed": stages.speed} if stages.speed else None  # load()'s speed-ups, in every dynamics checkpoint
    record_path = work / "recipe.json"
    # A fresh full run starts a new record; --only and --resume add to the one in the work dir.
    keep = record_path.exists() and (args.only is not None or args.resume)
    record = read_json(record_path) if keep else {"stages": {}}
    record["command"] = _stage_cmd(module, args, None)  # what rebuilds them all, even when this sitting runs one
    for stage in todo:
        t = time.time()
        earlier = _earlier_training_s(work / f"{stage}-run") if args.resume and stage not in record["stages"] else 0.0
        if stage == "collect":
            for c in stages.collect:
                if args.resume and (data[c.name] / "meta.json").exists():
                    continue
                n = max(2, int(c.episodes * (args.scale if c.scaled else min(args.scale, 1.0))))
                collect(c.env, data[c.name], episodes=n, steps=c.steps, policy=c.policy, seed=c.seed,
                        env_kwargs=c.env_kwargs, overwrite=True)
            used = {c.name: str(data[c.name]) for c in stages.collect}
        elif stage == "tokenizer":
            tok = train_tokenizer(data["train"], work / "tokenizer", stages.vae, scaled(stages.vae_train, args.scale, args.threads),
                                  heldout=data["heldout"], resume=args.resume, recipe=cmd, run_dir=work / "tokenizer-run")
            print(f"tokenizer: held-out reconstruction PSNR {tok.psnr:.2f} dB", flush=True)
            used = {"train": str(data["train"]), "heldout": str(data["heldout"])}
        elif stage == "dynamics":
            train_dynamics(data["train"], work / "tokenizer", dyn_out, stages.dynamics, stages.dyn_recipe,
                           scaled(stages.dyn_train, args.scale, args.threads), sim_defaults=stages.sim_defaults,
                           resume=args.resume, recipe_cmd=cmd, run_dir=work / "dynamics-run",
                           extra_config=speed, until=args.stop_at or None)
            used = {"train": str(data["train"]), "tokenizer": str(work / "tokenizer")}
        elif stage in refines:
            rf, init = refines[stage], outs[phases[phases.index(stage) - 1]]
            train_dynamics(data["train"], work / "tokenizer", outs[stage], rf.dynamics or stages.dynamics, rf.recipe,
                           scaled(rf.train, args.scale, args.threads), sim_defaults=stages.sim_defaults,
                           resume=args.resume, recipe_cmd=cmd, run_dir=work / f"{stage}-run",
                           extra_config=speed, init=init)
            used = {"train": str(data["train"]), "tokenizer": str(work / "tokenizer"), "init": str(init)}
        elif stage == "student":
            from ..training.distill import distill

            st = stages.student
            assert st is not None
            recipe = stages.memory.student if memory and stages.memory else st.recipe
            distill(teacher, data["train"], outs["student"], recipe, scaled(st.train, args.scale, args.threads),
                    resume=args.resume, recipe_cmd=cmd, run_dir=work / "student-run", sim_steps=st.sim_steps)
            used = {"train": str(data["train"]), "teacher": str(teacher)}
        else:
            from ..training.temporal_decoder import train_temporal_decoder

            dec = stages.decoder
            assert dec is not None
            base = outs.get("student", teacher)
            td_recipe = dataclasses.replace(dec.recipe, rollouts=max(2, int(dec.recipe.rollouts * args.scale)))
            train_temporal_decoder(base, data["train"], outs["decoder"], dec.cfg, td_recipe,
                                   scaled(dec.train, args.scale, args.threads), resume=args.resume,
                                   recipe_cmd=cmd, run_dir=work / "decoder-run")
            used = {"train": str(data["train"]), "world model": str(base)}
        seconds = time.time() - t + earlier  # an interrupted stage's earlier sittings: their training time
        if args.resume and stage in record["stages"]:  # a resumed stage's wall time is the sum of its sittings
            seconds += record["stages"][stage]["seconds"]
        record["stages"][stage] = {"command": _stage_cmd(module, args, stage), "data": used, "seconds": round(seconds, 1)}
        atomic_write_json(record_path, record)
        print(f"{stage}: {(time.time() - t) / 60:.1f} min", flush=True)
    final = names[-1]
    if final in record["stages"] and (Path(args.out) / "config.json").exists():
        write_recipe_record(Path(args.out), record, names, stages.speed)
    total = sum(v["seconds"] for v in record["stages"].values())
    print(json.dumps({"stages_s": {k: v["seconds"] for k, v in record["stages"].items()},
                      "total_min": round(total / 60, 1)}), flush=True)
    return record


def write_recipe_record(out: Path, record: dict[str, Any], names: list[str], speed: dict[str, Any]) -> None:
    """Put the recipe record (each stage's command, data, time) into ``out``'s config.json and card."""
    from ..checkpoint import CARD, CONFIG, drop_sections

    config = read_json(out / CONFIG)
    # Only the stages that made this checkpoint (a --decoder run's record may hold one more).
    record = {**record, "stages": {k: record["stages"][k] for k in names if k in record["stages"]}}
    total = sum(v["seconds"] for v in record["stages"].values())
    # Under its own key: "recipe" is the training recipe that --config CHECKPOINT repeats.
    config["rebuild"] = {**record, "total_seconds": round(total, 1), "order": names}
    config["stage_seconds"] = {k: v["seconds"] for k, v in record["stages"].items()}
    if speed:
        config["speed"] = dict(speed)
    atomic_write_json(out / CONFIG, config)
    rows = [f"| {k} | `{v['command']}` | {', '.join(f'`{d}`' for d in v['data'].values())} | {v['seconds'] / 60:.1f} |"
            for k in names if (v := record["stages"].get(k))]
    section = (f"## Recipe\n\nRebuilt from nothing by `{record['command']}` ({total / 60:.1f} min of stages on this "
               f"machine). Each stage alone:\n\n| stage | command | data | min |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")
    card = drop_sections((out / CARD).read_text() if (out / CARD).exists() else "", "## Recipe\n")
    atomic_write_bytes(out / CARD, (card.rstrip() + "\n\n" + section).encode())
