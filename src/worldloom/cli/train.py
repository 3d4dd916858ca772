"""Training commands: ``train tokenizer``, ``train dynamics``, ``train temporal-decoder`` (presets in
:mod:`worldloom.recipes.presets`) and ``distill``."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..config import add_dataclass_args, dataclass_from_args
from ..hardware import setup_cpu
from ..recipes.presets import ABOUT, NAMES as PRESETS
from . import common
from .common import (brief_help, UsageError, _dataset, _fields_given, _preset_defaults, _progress, _rank,
                     config_file_bases, config_options, print_config)


def _require(args: argparse.Namespace, *names: str) -> None:
    """The path options a training run needs; --print-config alone needs none of them."""
    missing = [f"--{n}" for n in names if getattr(args, n) is None]
    if missing and not args.print_config:
        raise UsageError(f"the following arguments are required: {', '.join(missing)}")


def _preset(name: str) -> Any:
    from ..recipes import presets

    try:
        return presets.get(name)
    except KeyError:
        raise UsageError(f"--preset {name!r}: unknown; known: {', '.join(PRESETS)}") from None


def tokenizer_preset(name: str) -> tuple[Any, Any]:
    """(VAEConfig, TrainConfig) of a preset (:mod:`worldloom.recipes.presets`)."""
    pr = _preset(name)
    return pr.vae, pr.vae_train


def dynamics_preset(name: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(DynamicsConfig, DynamicsRecipe, TrainConfig, SimConfig defaults) of a preset."""
    pr = _preset(name)
    return pr.dynamics, pr.recipe, pr.train, dict(pr.sim)


def cmd_train_tokenizer(args: argparse.Namespace) -> None:
    from ..models.vae import VAEConfig
    from ..training.loop import TrainConfig
    from ..training.tokenizer import train_tokenizer

    setup_cpu()
    _require(args, "data", "out")
    ds = _dataset(args.data, "--data") if args.data else None
    if args.heldout:
        _dataset(args.heldout, "--heldout")
    vae_base, train_base = tokenizer_preset(args.preset)
    bases = config_file_bases(args.config, {"vae": (VAEConfig, vae_base), "train": (TrainConfig, train_base)},
                              kinds={"worldmodel": ("vae",)})  # a world model's `train` is its DiT's
    vae_base, train_base = bases["vae"], bases["train"]
    if args.init:  # fine-tune: the architecture is the init checkpoint's (a --vae-* shape that differs fails to load)
        from ..config import from_dict

        init_cfg = _tokenizer_config_of(args.init, "--init")
        vae_base = from_dict(VAEConfig, init_cfg["vae"], where=f"{args.init}/config.json:vae")
    h, w, _ = ds.frame_shape if ds is not None else (vae_base.frame_size, vae_base.frame_size, 3)
    if h != w:
        raise UsageError(f"--data {args.data}: frames are {h}x{w}; the tokenizer needs square frames")
    if args.vae_frame_size is None:
        vae_base = dataclasses.replace(vae_base, frame_size=h)
    vae_cfg = dataclass_from_args(VAEConfig, args, vae_base, "vae-")
    train_cfg = dataclass_from_args(TrainConfig, args, train_base, "train-")
    if ds is not None and vae_cfg.frame_size != h:
        raise UsageError(f"--vae-frame-size {vae_cfg.frame_size}: --data {args.data} has {h}x{w} frames")
    if args.print_config:
        return print_config({"vae": vae_cfg, "train": train_cfg})
    res = train_tokenizer(args.data, args.out, vae_cfg, train_cfg, heldout=args.heldout, resume=args.resume,
                          progress=_progress(), recipe=args.command_line, run_dir=args.run_dir, init=args.init)
    if _rank() == 0:
        where = "held-out" if args.heldout else "training"
        print(f"tokenizer -> {res.path}: {train_cfg.steps} steps, reconstruction PSNR {res.psnr:.2f} dB "
              f"({where} frames), {res.train_s:.2f} s")


def _checkpoint_config(path: str, flag: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    """The config.json of the checkpoint given to ``flag``, which must be of one of ``kinds``."""
    from ..checkpoint import CONFIG, CheckpointError, read_config

    try:
        d, config = read_config(path, kinds)
    except (CheckpointError, FileNotFoundError) as e:
        raise UsageError(f"{flag}: {e}") from None
    if "vae" not in config:
        raise UsageError(f"{flag} {d / CONFIG}: has no 'vae' config; expected a {' or '.join(map(repr, kinds))} checkpoint")
    return config


def _tokenizer_config_of(path: str, flag: str) -> dict[str, Any]:
    # A world model holds its tokenizer under the same "vae." keys, so it can serve as one too.
    return _checkpoint_config(path, flag, ("tokenizer", "worldmodel"))


def _tokenizer_config(path: str) -> dict[str, Any]:
    return _tokenizer_config_of(path, "--tokenizer")


def cmd_train_dynamics(args: argparse.Namespace) -> None:
    from ..config import from_dict
    from ..models.dit import DynamicsConfig
    from ..models.vae import VAEConfig
    from ..runtime.simulator import SimConfig
    from ..training.dynamics import DynamicsRecipe, train_dynamics
    from ..training.loop import TrainConfig

    setup_cpu()
    _require(args, "data", "tokenizer", "out")
    ds = _dataset(args.data, "--data") if args.data else None
    if args.tokenizer:
        tok = _tokenizer_config(args.tokenizer)
        vcfg = from_dict(VAEConfig, tok["vae"], where=f"{args.tokenizer}/config.json:vae")
    else:  # --print-config alone: the preset's own tokenizer
        vcfg = tokenizer_preset(args.preset)[0]
    if ds is not None and tuple(ds.frame_shape) != (vcfg.frame_size, vcfg.frame_size, 3):
        raise UsageError(f"--data {args.data}: frames are {list(ds.frame_shape)}, tokenizer {args.tokenizer} expects "
                         f"{vcfg.frame_size}x{vcfg.frame_size}x3")
    dyn_base, recipe_base, train_base, sim_base = dynamics_preset(args.preset)
    if args.init:  # fine-tune: the architecture is the init checkpoint's (a --dyn-* that differs is refused)
        init_cfg = _checkpoint_config(args.init, "--init", ("worldmodel",))
        dyn_base = from_dict(DynamicsConfig, init_cfg["dynamics"], where=f"{args.init}/config.json:dynamics")
    bases = config_file_bases(args.config, {"dynamics": (DynamicsConfig, dyn_base), "recipe": (DynamicsRecipe, recipe_base),
                                            "train": (TrainConfig, train_base),
                                            "sim": (SimConfig, from_dict(SimConfig, sim_base, where=f"preset {args.preset}"))},
                              kinds={"tokenizer": ()})
    dyn_base, recipe_base, train_base, sim_obj = bases["dynamics"], bases["recipe"], bases["train"], bases["sim"]
    # Sizes the tokenizer and the data already fix, unless given explicitly.
    dyn_base = dataclasses.replace(dyn_base, latent_channels=vcfg.latent_channels, latent_size=vcfg.latent_size,
                                   **({"n_actions": ds.action_spec.n, "n_axes": ds.action_spec.n_axes} if ds is not None else {}))
    dyn_cfg = dataclass_from_args(DynamicsConfig, args, dyn_base, "dyn-")
    recipe = dataclass_from_args(DynamicsRecipe, args, recipe_base, "recipe-")
    train_cfg = dataclass_from_args(TrainConfig, args, train_base, "train-")
    sim_given = _fields_given(SimConfig, args, "sim-")
    sim_cfg = dataclass_from_args(SimConfig, args, sim_obj, "sim-")
    if recipe.clip_len > dyn_cfg.max_frames:
        raise UsageError(f"--recipe-clip-len {recipe.clip_len} exceeds --dyn-max-frames {dyn_cfg.max_frames}")
    if sim_cfg.sink + sim_cfg.window > dyn_cfg.max_frames:
        if "window" in sim_given:
            raise UsageError(f"--sim-window {sim_cfg.window} + --sim-sink {sim_cfg.sink} exceeds --dyn-max-frames "
                             f"{dyn_cfg.max_frames}")
        sim_cfg = dataclasses.replace(sim_cfg, window=max(1, dyn_cfg.max_frames - sim_cfg.sink))
    if ds is None:  # --print-config without --data
        return print_config({"dynamics": dyn_cfg, "recipe": recipe, "train": train_cfg, "sim": sim_cfg})
    longest = int(ds.lengths.max()) if len(ds) else 0
    if longest < recipe.clip_len:
        raise UsageError(f"--data {args.data}: longest episode has {longest} frames, fewer than "
                         f"--recipe-clip-len {recipe.clip_len}")
    if not 0 <= args.context_episode < len(ds):
        raise UsageError(f"--context-episode {args.context_episode}: --data {args.data} has episodes 0..{len(ds) - 1}")
    if recipe.memory != "none":  # before the dataset is encoded
        if recipe.context != "clean":
            raise UsageError(f"--recipe-memory {recipe.memory}: needs --recipe-context clean (memory frames are seen by "
                             f"the target stream), got {recipe.context!r}")
        if recipe.memory == "place" and "camera" not in (ds.meta.get("state_keys") or []):
            raise UsageError(f"--recipe-memory place: --data {args.data} has no state.camera (its meta.json state_keys: "
                             f"{ds.meta.get('state_keys') or []}); use --recipe-memory similar for a world without a camera")
    if args.print_config:
        return print_config({"dynamics": dyn_cfg, "recipe": recipe, "train": train_cfg, "sim": sim_cfg})
    res = train_dynamics(args.data, args.tokenizer, args.out, dyn_cfg, recipe, train_cfg,
                         sim_defaults=dataclasses.asdict(sim_cfg), resume=args.resume, progress=_progress(),
                         recipe_cmd=args.command_line, run_dir=args.run_dir, init=args.init,
                         context_episode=args.context_episode)
    if _rank() == 0:
        loss = res.last.get("loss")
        print(f"world model -> {res.path}: {train_cfg.steps} steps, final loss "
              f"{'n/a' if loss is None else f'{loss:.4f}'}, {res.train_s:.2f} s")


_PRESET_HELP = "; ".join(f"{name} = {about}" for name, about in ABOUT.items())


def _run_options(p: argparse.ArgumentParser) -> None:
    """--preset, --resume and --run-dir, the same on every training command."""
    p.add_argument("--preset", default="cpu", choices=PRESETS, help=f"base configs: {_PRESET_HELP} (default: cpu)")
    p.add_argument("--resume", action="store_true", help="continue from the training state in the run dir")
    p.add_argument("--run-dir", default=None, help="training state and log.jsonl (default: OUT/run)")
    _log_with(p)
    config_options(p)


def _log_with(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-with", dest="train_log_with", default=None, choices=("none", "tensorboard", "wandb"),
                   help="also send the training curves to TensorBoard (RUN_DIR/tensorboard) or W&B (= --train-log-with)")


def _config_options(p: argparse.ArgumentParser, presets: dict[str, tuple[Any, ...]],
                    groups: list[tuple[type, str, dict[str, str] | None]]) -> None:
    """One ``--prefix-*`` option per field of each (config class, prefix, notes) in ``groups``, with the
    defaults shown as the presets set them; ``presets[name][i]`` is group i's config in preset ``name``."""
    for i, (cls, prefix, notes) in enumerate(groups):
        add_dataclass_args(p, cls, prefix)
        _preset_defaults(p, cls, prefix, {n: c[i] for n, c in presets.items()}, notes)


def temporal_decoder_preset(name: str) -> tuple[Any, Any, Any]:
    """(TemporalDecoderConfig, TemporalDecoderRecipe, TrainConfig) of a preset."""
    pr = _preset(name)
    return pr.td, pr.td_recipe, pr.td_train


def cmd_train_temporal_decoder(args: argparse.Namespace) -> None:
    from ..models.temporal_decoder import TemporalDecoderConfig
    from ..training.loop import TrainConfig
    from ..training.temporal_decoder import TemporalDecoderRecipe, train_temporal_decoder

    setup_cpu()
    _dataset(args.data, "--data")
    _checkpoint_config(args.checkpoint, "--checkpoint", ("worldmodel",))
    cfg_base, recipe_base, train_base = temporal_decoder_preset(args.preset)
    bases = config_file_bases(args.config, {"temporal_decoder": (TemporalDecoderConfig, cfg_base),
                                            "recipe": (TemporalDecoderRecipe, recipe_base), "train": (TrainConfig, train_base)},
                              root="temporal_decoder_train")
    cfg = dataclass_from_args(TemporalDecoderConfig, args, bases["temporal_decoder"], "td-")
    recipe = dataclass_from_args(TemporalDecoderRecipe, args, bases["recipe"], "recipe-")
    train_cfg = dataclass_from_args(TrainConfig, args, bases["train"], "train-")
    if args.print_config:
        return print_config({"temporal_decoder": cfg, "recipe": recipe, "train": train_cfg})
    try:
        res = train_temporal_decoder(args.checkpoint, args.data, args.out, cfg, recipe, train_cfg, resume=args.resume,
                                     progress=_progress(), recipe_cmd=args.command_line, run_dir=args.run_dir)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if _rank() == 0:
        psnr = res.last.get("psnr")
        print(f"world model with temporal decoder -> {res.path}: {train_cfg.steps} steps, last batch PSNR "
              f"{'n/a' if psnr is None else f'{psnr:.2f} dB'}, rollouts {res.rollout_s:.1f} s, training {res.train_s:.1f} s")


def _build_train(p: argparse.ArgumentParser) -> None:
    from ..models.dit import DynamicsConfig
    from ..models.vae import VAEConfig
    from ..runtime.simulator import SimConfig
    from ..training.dynamics import DynamicsRecipe
    from ..training.loop import TrainConfig

    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    tok = sub.add_parser(
        "tokenizer", help="train the VAE tokenizer on a dataset's frames", allow_abbrev=False, formatter_class=fmt,
        description="Train the VAE tokenizer; writes a 'tokenizer' checkpoint to --out (training state in --out/run).\n\n"
                    "Options: --vae-* set VAEConfig fields, --train-* TrainConfig fields; both start from --preset.\n"
                    "--vae-frame-size defaults to the dataset's frame size.\n"
                    "DDP: torchrun --nproc_per_node N -m worldloom.cli train tokenizer ... (same options).")
    tok.add_argument("--data", default=None, help="training dataset directory (needed but for --print-config)")
    tok.add_argument("--out", default=None, help="tokenizer checkpoint directory to write (needed but for --print-config)")
    tok.add_argument("--heldout", default=None, help="held-out dataset for the reconstruction PSNR (default: training frames)")
    tok.add_argument("--init", default=None, help="fine-tune: start from this tokenizer's (or world model's) VAE, "
                                                  "its architecture; --vae-* loss weights may differ")
    _run_options(tok)
    _config_options(tok, {name: tokenizer_preset(name) for name in PRESETS},
                    [(VAEConfig, "vae-", {"frame_size": "the dataset's frame size"}), (TrainConfig, "train-", None)])
    tok.epilog = ("examples:\n  worldloom train tokenizer --data runs/arena/data-train --out runs/arena/tokenizer\n"
                  "  worldloom train tokenizer --data D --out T --train-steps 2000 --train-threads 2 --resume")
    brief_help(tok, [(VAEConfig, "vae-"), (TrainConfig, "train-")], "worldloom train tokenizer")
    tok.set_defaults(func=cmd_train_tokenizer)

    dyn = sub.add_parser(
        "dynamics", help="train the causal DiT dynamics model on tokenizer latents", allow_abbrev=False, formatter_class=fmt,
        description="Train the dynamics model; writes a 'worldmodel' checkpoint (tokenizer + DiT) to --out.\n\n"
                    "Options: --dyn-* set DynamicsConfig fields, --recipe-* DynamicsRecipe fields, --train-*\n"
                    "TrainConfig fields, --sim-* the SimConfig saved as the checkpoint's run-time defaults;\n"
                    "all start from --preset. --dyn-latent-channels/--dyn-latent-size default to the tokenizer's,\n"
                    "--dyn-n-actions to the dataset's ActionSpec; --sim-window shrinks to fit --dyn-max-frames.\n"
                    "DDP: torchrun --nproc_per_node N -m worldloom.cli train dynamics ... (same options).")
    dyn.add_argument("--data", default=None, help="training dataset directory (needed but for --print-config)")
    dyn.add_argument("--tokenizer", default=None, help="tokenizer checkpoint directory (from `train tokenizer`; needed but for --print-config)")
    dyn.add_argument("--out", default=None, help="world-model checkpoint directory to write (needed but for --print-config)")
    dyn.add_argument("--init", default=None, help="fine-tune: start from this world model's DiT (its architecture; "
                                                  "pass it as --tokenizer too)")
    dyn.add_argument("--context-episode", type=int, default=0,
                     help="training episode whose first frames the checkpoint keeps as its play context (default: 0)")
    _run_options(dyn)
    _config_options(dyn, {name: (*c[:3], SimConfig(**c[3])) for name in PRESETS for c in [dynamics_preset(name)]},
                    [(DynamicsConfig, "dyn-", {"latent_channels": "the tokenizer's", "latent_size": "the tokenizer's",
                                               "n_actions": "the dataset's number of actions",
                                               "n_axes": "the dataset's number of continuous axes"}),
                     (DynamicsRecipe, "recipe-", None), (TrainConfig, "train-", None), (SimConfig, "sim-", None)])
    dyn.epilog = ("examples:\n  worldloom train dynamics --data runs/arena/data-train --tokenizer runs/arena/tokenizer "
                  "--out runs/arena/wm\n  worldloom train dynamics --data D --tokenizer T --out W --train-steps 2400 "
                  "--train-threads 2 --resume\n  torchrun --nproc_per_node 2 -m worldloom.cli train dynamics --data D "
                  "--tokenizer T --out W")
    brief_help(dyn, [(DynamicsConfig, "dyn-"), (DynamicsRecipe, "recipe-"), (TrainConfig, "train-"), (SimConfig, "sim-")],
               "worldloom train dynamics")
    dyn.set_defaults(func=cmd_train_dynamics)

    from ..models.temporal_decoder import TemporalDecoderConfig
    from ..training.temporal_decoder import TemporalDecoderRecipe

    td = sub.add_parser(
        "temporal-decoder", help="add a decoder that draws each frame with the last shown frame in view",
        allow_abbrev=False, formatter_class=fmt,
        description="Roll a world model out on a dataset as it plays and train a temporal decoder on its own\n"
                    "latents (models/temporal_decoder.py); writes the world model with the decoder added to --out.\n\n"
                    "Options: --td-* set TemporalDecoderConfig fields, --recipe-* TemporalDecoderRecipe fields,\n"
                    "--train-* TrainConfig fields; all start from --preset.")
    td.add_argument("--checkpoint", required=True, help="world-model checkpoint directory or bundled name")
    td.add_argument("--data", required=True, help="action-labelled dataset to roll out on (the model's training data)")
    td.add_argument("--out", required=True, help="world-model checkpoint directory to write")
    _run_options(td)
    _config_options(td, {name: temporal_decoder_preset(name) for name in PRESETS},
                    [(TemporalDecoderConfig, "td-", None), (TemporalDecoderRecipe, "recipe-", None),
                     (TrainConfig, "train-", None)])
    td.epilog = "example:\n  worldloom train temporal-decoder --checkpoint runs/arena/wm --data runs/arena/data-train --out runs/arena/wm-td"
    brief_help(td, [(TemporalDecoderConfig, "td-"), (TemporalDecoderRecipe, "recipe-"), (TrainConfig, "train-")],
               "worldloom train temporal-decoder")
    td.set_defaults(func=cmd_train_temporal_decoder)


def cmd_distill(args: argparse.Namespace) -> None:
    from ..training.distill import DistillRecipe, distill
    from ..training.loop import TrainConfig

    setup_cpu()
    _dataset(args.data, "--data")
    bases = config_file_bases(args.config, {"recipe": (DistillRecipe, DistillRecipe()), "train": (TrainConfig, _distill_train())},
                              root="distill")
    recipe = dataclass_from_args(DistillRecipe, args, bases["recipe"], "recipe-")
    train_cfg = dataclass_from_args(TrainConfig, args, bases["train"], "train-")
    if args.print_config:
        return print_config({"recipe": recipe, "train": train_cfg})
    res = distill(args.teacher, args.data, args.out, recipe, train_cfg, resume=args.resume, progress=_progress(),
                  recipe_cmd=args.command_line, run_dir=args.run_dir, until=args.until, init=args.init,
                  sim_steps=args.sim_steps)
    if _rank() == 0:
        loss = res.last.get("loss_true")
        print(f"student -> {res.path}: a {recipe.student_steps}-step student, {train_cfg.steps} optimizer steps, final loss vs truth "
              f"{'n/a' if loss is None else f'{loss:.4f}'}, {res.train_s:.2f} s")


def _distill_train() -> Any:
    from ..training.distill import DISTILL_TRAIN

    return DISTILL_TRAIN


def _build_distill(p: argparse.ArgumentParser) -> None:
    from ..training.distill import DistillRecipe
    from ..training.loop import TrainConfig

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = ("Fine-tune a copy of a world model (the teacher) into a 1- or 2-step student on its own KV-cached\n"
                     "rollouts (self-rollout training, see worldloom.training.distill); writes a 'worldmodel'\n"
                     "checkpoint whose sim default is the student's step count.\n\n"
                     "Options: --recipe-* set DistillRecipe fields, --train-* TrainConfig fields.")
    p.add_argument("--teacher", required=True, help="world-model checkpoint directory or bundled name (e.g. arena)")
    p.add_argument("--data", required=True, help="action-labelled training dataset (the teacher's)")
    p.add_argument("--out", required=True, help="student checkpoint directory to write")
    p.add_argument("--init", default=None, help="start the student from this world model (same architecture; "
                                                "default: a copy of the teacher)")
    p.add_argument("--sim-steps", type=int, default=None,
                   help="sampler steps the student runs with by default (default: --recipe-student-steps)")
    p.add_argument("--resume", action="store_true", help="continue from the training state in the run dir")
    p.add_argument("--until", type=int, default=None,  # an interrupted run on purpose: listed by --help-all only
                   help="stop (and write the checkpoint) at this step" if common.FULL_HELP else argparse.SUPPRESS)
    p.add_argument("--run-dir", default=None, help="training state and log.jsonl (default: OUT/run)")
    _log_with(p)
    config_options(p)
    _config_options(p, {"default": (DistillRecipe(), _distill_train())},
                    [(DistillRecipe, "recipe-", None), (TrainConfig, "train-", None)])
    p.epilog = ("examples:\n  worldloom distill --teacher runs/arena/wm --data runs/arena/data-train --out runs/arena/student\n"
                "  worldloom distill --teacher T --data D --out S --recipe-student-steps 1 --train-steps 200 --train-threads 2")
    brief_help(p, [(DistillRecipe, "recipe-"), (TrainConfig, "train-")], "worldloom distill")
    p.set_defaults(func=cmd_distill)


def cmd_plot(args: argparse.Namespace) -> None:
    from ..training.curves import plot_run

    try:
        out = plot_run(args.run_dir, args.out)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    print(out)


def _build_plot(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("examples:\n  worldloom plot runs/arena-recipe/dynamics-run\n"
                "  worldloom plot runs/my-run/log.jsonl --out docs/img/curves.png")
    p.add_argument("run_dir", help="a training run directory (its log.jsonl), or the log file itself")
    p.add_argument("--out", default=None, help="PNG to write (default: RUN_DIR/curves.png)")
    p.set_defaults(func=cmd_plot)
