"""``worldloom`` command line: collect, import-videos, train, generate, bench, eval, doctor.

Thin by design: every command parses its options, checks what a user can get wrong (paths, names,
sizes), calls one library function and formats its result. Nothing here trains, samples or
measures on its own.

Design choices:

- **Nothing heavy at import.** Only the selected command's options are built, and torch-backed
  modules (models, training, runtime) are imported inside the commands, so ``worldloom collect`` and
  ``worldloom --help`` never load torch.
- **Options come from the config dataclasses** (:func:`worldloom.config.add_dataclass_args`), one
  prefix per dataclass: ``--vae-*`` (VAEConfig), ``--dyn-*`` (DynamicsConfig), ``--recipe-*``
  (DynamicsRecipe), ``--train-*`` (TrainConfig), ``--sim-*`` (SimConfig saved with a trained model)
  and plain ``--steps/--window/...`` (SimConfig at run time). A preset (``cpu``, ``tiny``) gives the
  base values; options override them; sizes that the data or tokenizer already fix are taken from
  them unless given.
- **User errors exit 2 with one line** naming the file or option at fault (no traceback; set
  ``WORLDLOOM_DEBUG=1`` to see one). Programming errors still raise.
- **Same code path under torchrun**: ``torchrun --nproc_per_node 2 -m worldloom.cli train ...``
  runs exactly what ``worldloom train ...`` runs; the training loop reads the DDP env vars and only
  rank 0 writes files and prints.
- Every entry point that touches torch calls ``torch.set_flush_denormal(True)`` (a CPU run here
  slowed 10-20x without it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .config import add_dataclass_args, dataclass_from_args

PRESETS = ("cpu", "tiny")
VIDEO_SCALE = 4  # nearest-neighbour upscale of written videos
EXIT_USAGE = 2


class UsageError(Exception):
    """Something the user can fix (a path, a name, an option); printed as one line, exit 2."""


# --- helpers ---------------------------------------------------------------------------------------


def _setup_torch(threads: int = 0) -> None:
    import torch

    torch.set_flush_denormal(True)
    if threads > 0:
        torch.set_num_threads(threads)


def _rank() -> int:
    return int(os.environ.get("RANK", 0))


def _progress() -> bool:
    return sys.stderr.isatty()


def _command_line(argv: Sequence[str] | None) -> str:
    return "worldloom " + shlex.join(list(argv) if argv is not None else sys.argv[1:])


def _existing_dir(path: str, option: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"{option} {path}: directory not found")
    return p


def _dataset(path: str, option: str) -> Any:
    from .data.format import Dataset

    return Dataset.open(_existing_dir(path, option))


def _fields_given(cls: type, args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The fields of ``cls`` that were set on the command line (with ``prefix``)."""
    out = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        v = getattr(args, (prefix + f.name).replace("-", "_"), None)
        if v is not None:
            out[f.name] = tuple(v) if isinstance(v, list) else v
    return out


def parse_actions(text: str, spec: Any) -> list[int]:
    """``"4,4,2"`` or ``"right,right,down"`` (ids and names may mix) -> action ids, checked."""
    ids = []
    for i, tok in enumerate(t.strip() for t in text.split(",")):
        if not tok:
            raise UsageError(f"--actions: empty entry at position {i} in {text!r}")
        if tok.lstrip("-").isdigit():
            a = int(tok)
            if not 0 <= a < spec.n:
                raise UsageError(f"--actions: action id {a} out of range 0..{spec.n - 1} ({', '.join(spec.names)})")
        else:
            lowered = {n.lower(): j for j, n in enumerate(spec.names)}
            if tok.lower() not in lowered:
                raise UsageError(f"--actions: unknown action {tok!r}; known: {', '.join(spec.names)}")
            a = lowered[tok.lower()]
        ids.append(a)
    return ids


def write_video(path: Path, frames: Any, fps: float, scale: int = VIDEO_SCALE) -> None:
    """Write uint8 frames (T, H, W, 3), upscaled ``scale``x (nearest), as .gif or via ffmpeg."""
    import imageio.v3 as iio
    import numpy as np

    frames = np.asarray(frames, dtype=np.uint8)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    else:
        iio.imwrite(path, frames, plugin="FFMPEG", fps=fps, macro_block_size=1)


# --- presets ---------------------------------------------------------------------------------------


def tokenizer_preset(name: str) -> tuple[Any, Any]:
    """(VAEConfig, TrainConfig) of a preset: ``cpu`` = the arena recipe, ``tiny`` = for tests."""
    from .models.vae import VAEConfig
    from .training.loop import TrainConfig

    if name == "cpu":
        from .recipes import arena

        return arena.VAE_CFG, arena.VAE_TRAIN
    if name == "tiny":
        return (VAEConfig(frame_size=64, latent_channels=4, downsample=4, width=16, blocks=1),
                TrainConfig(steps=4, batch_size=4, lr=1e-3, warmup=1, ema_decay=0.9, precision="fp32",
                            log_every=1, ckpt_every=1000))
    raise UsageError(f"--preset {name!r}: unknown; known: {', '.join(PRESETS)}")


def dynamics_preset(name: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(DynamicsConfig, DynamicsRecipe, TrainConfig, SimConfig defaults) of a preset."""
    from .models.dit import DynamicsConfig
    from .training.dynamics import DynamicsRecipe
    from .training.loop import TrainConfig

    if name == "cpu":
        from .recipes import arena

        return arena.DYN_CFG, arena.DYN_RECIPE, arena.DYN_TRAIN, dict(arena.SIM_DEFAULTS)
    if name == "tiny":
        return (DynamicsConfig(latent_channels=4, latent_size=16, patch=4, dim=32, depth=1, heads=2, mlp_ratio=2.0,
                               n_actions=5, max_frames=8),
                DynamicsRecipe(clip_len=4),
                TrainConfig(steps=4, batch_size=2, lr=1e-3, warmup=1, ema_decay=0.9, precision="fp32",
                            log_every=1, ckpt_every=1000),
                {"steps": 2, "window": 8, "sink": 0, "context_noise": 0.0})
    raise UsageError(f"--preset {name!r}: unknown; known: {', '.join(PRESETS)}")


# --- commands --------------------------------------------------------------------------------------


def cmd_collect(args: argparse.Namespace) -> None:
    from .data.collect import collect
    from .data.format import Dataset

    if args.env != "arena" and not args.env.startswith("gym:"):
        raise UsageError(f"ENV {args.env!r}: expected 'arena' or 'gym:<Gymnasium id>' (e.g. gym:CartPole-v1)")
    try:
        env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs else None
    except json.JSONDecodeError as e:
        raise UsageError(f"--env-kwargs: not valid JSON ({e})") from None
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise UsageError("--env-kwargs: expected a JSON object, e.g. '{\"n_balls\": 6}'")
    t0 = time.time()
    out = collect(args.env, args.out, args.episodes, args.steps, policy=args.policy, seed=args.seed,
                  frame_size=args.frame_size, env_kwargs=env_kwargs, progress=_progress(), overwrite=args.overwrite)
    ds = Dataset.open(out)
    print(f"collected {len(ds)} episodes, {ds.n_frames} frames of {args.env} -> {out} ({time.time() - t0:.1f} s)")


def cmd_import_videos(args: argparse.Namespace) -> None:
    from .data.format import Dataset
    from .data.video_import import import_videos

    _existing_dir(args.src, "SRC")
    names = [n.strip() for n in args.action_names.split(",")] if args.action_names else None
    out = import_videos(args.src, args.out, frame_size=args.frame_size, fps=args.fps, action_names=names,
                        overwrite=args.overwrite)
    ds = Dataset.open(out)
    print(f"imported {len(ds)} videos, {ds.n_frames} frames -> {out} ({ds.action_spec.n} actions, {ds.fps} fps)")


def cmd_train_tokenizer(args: argparse.Namespace) -> None:
    from .models.vae import VAEConfig
    from .training.loop import TrainConfig
    from .training.tokenizer import train_tokenizer

    _setup_torch()
    ds = _dataset(args.data, "--data")
    if args.heldout:
        _dataset(args.heldout, "--heldout")
    vae_base, train_base = tokenizer_preset(args.preset)
    h, w, _ = ds.frame_shape
    if h != w:
        raise UsageError(f"--data {args.data}: frames are {h}x{w}; the tokenizer needs square frames")
    if args.vae_frame_size is None:
        vae_base = dataclasses.replace(vae_base, frame_size=h)
    vae_cfg = dataclass_from_args(VAEConfig, args, vae_base, "vae-")
    train_cfg = dataclass_from_args(TrainConfig, args, train_base, "train-")
    if vae_cfg.frame_size != h:
        raise UsageError(f"--vae-frame-size {vae_cfg.frame_size}: --data {args.data} has {h}x{w} frames")
    res = train_tokenizer(args.data, args.out, vae_cfg, train_cfg, heldout=args.heldout, resume=args.resume,
                          progress=_progress(), recipe=args.command_line, run_dir=args.run_dir)
    if _rank() == 0:
        where = "held-out" if args.heldout else "training"
        print(f"tokenizer -> {res.path}: {train_cfg.steps} steps, reconstruction PSNR {res.psnr:.2f} dB "
              f"({where} frames), {res.train_s:.2f} s")


def _tokenizer_config(path: str) -> dict[str, Any]:
    from .checkpoint import CONFIG, CheckpointError, resolve
    from .config import read_json

    try:
        d = resolve(path)
        config = read_json(d / CONFIG)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        raise UsageError(f"--tokenizer: {e}") from None
    # A world model holds its tokenizer under the same "vae." keys, so it can serve as one too.
    if not isinstance(config, dict) or config.get("kind") not in ("tokenizer", "worldmodel") or "vae" not in config:
        kind = config.get("kind") if isinstance(config, dict) else None
        raise UsageError(f"--tokenizer {d / CONFIG}: kind is {kind!r}, expected a 'tokenizer' (or 'worldmodel') checkpoint")
    return config


def cmd_train_dynamics(args: argparse.Namespace) -> None:
    from .config import from_dict
    from .models.dit import DynamicsConfig
    from .models.vae import VAEConfig
    from .runtime.simulator import SimConfig
    from .training.dynamics import DynamicsRecipe, train_dynamics
    from .training.loop import TrainConfig

    _setup_torch()
    ds = _dataset(args.data, "--data")
    tok = _tokenizer_config(args.tokenizer)
    vcfg = from_dict(VAEConfig, tok["vae"], where=f"{args.tokenizer}/config.json:vae")
    if tuple(ds.frame_shape) != (vcfg.frame_size, vcfg.frame_size, 3):
        raise UsageError(f"--data {args.data}: frames are {list(ds.frame_shape)}, tokenizer {args.tokenizer} expects "
                         f"{vcfg.frame_size}x{vcfg.frame_size}x3")
    dyn_base, recipe_base, train_base, sim_base = dynamics_preset(args.preset)
    # Sizes the tokenizer and the data already fix, unless given explicitly.
    dyn_base = dataclasses.replace(dyn_base, latent_channels=vcfg.latent_channels, latent_size=vcfg.latent_size,
                                   n_actions=ds.action_spec.n)
    dyn_cfg = dataclass_from_args(DynamicsConfig, args, dyn_base, "dyn-")
    recipe = dataclass_from_args(DynamicsRecipe, args, recipe_base, "recipe-")
    train_cfg = dataclass_from_args(TrainConfig, args, train_base, "train-")
    sim_given = _fields_given(SimConfig, args, "sim-")
    sim_cfg = dataclass_from_args(SimConfig, args, from_dict(SimConfig, sim_base, where=f"preset {args.preset}"), "sim-")
    if recipe.clip_len > dyn_cfg.max_frames:
        raise UsageError(f"--recipe-clip-len {recipe.clip_len} exceeds --dyn-max-frames {dyn_cfg.max_frames}")
    if sim_cfg.sink + sim_cfg.window > dyn_cfg.max_frames:
        if "window" in sim_given:
            raise UsageError(f"--sim-window {sim_cfg.window} + --sim-sink {sim_cfg.sink} exceeds --dyn-max-frames "
                             f"{dyn_cfg.max_frames}")
        sim_cfg = dataclasses.replace(sim_cfg, window=max(1, dyn_cfg.max_frames - sim_cfg.sink))
    longest = int(ds.lengths.max()) if len(ds) else 0
    if longest < recipe.clip_len:
        raise UsageError(f"--data {args.data}: longest episode has {longest} frames, fewer than "
                         f"--recipe-clip-len {recipe.clip_len}")
    res = train_dynamics(args.data, args.tokenizer, args.out, dyn_cfg, recipe, train_cfg,
                         sim_defaults=dataclasses.asdict(sim_cfg), resume=args.resume, progress=_progress(),
                         recipe_cmd=args.command_line, run_dir=args.run_dir)
    if _rank() == 0:
        loss = res.last.get("loss")
        print(f"world model -> {res.path}: {train_cfg.steps} steps, final loss "
              f"{'n/a' if loss is None else f'{loss:.4f}'}, {res.train_s:.2f} s")


def _sim_overrides(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """The SimConfig options given, checked against the model (named in the error if they don't fit)."""
    from .runtime.simulator import SimConfig

    given = _fields_given(SimConfig, args)
    cfg = dataclasses.replace(model.sim, **given)
    if cfg.steps < 1:
        raise UsageError(f"--steps {cfg.steps}: must be >= 1")
    if cfg.window < 1 or cfg.sink < 0:
        raise UsageError(f"--window {cfg.window} / --sink {cfg.sink}: need window >= 1 and sink >= 0")
    max_frames = model.dit.cfg.max_frames
    if cfg.sink + cfg.window > max_frames:
        raise UsageError(f"--window {cfg.window} + --sink {cfg.sink} exceeds the checkpoint's max_frames {max_frames}")
    return given


def _load_model(path: str) -> Any:
    from .checkpoint import CheckpointError
    from .runtime.simulator import load

    try:
        return load(path)
    except CheckpointError as e:
        raise UsageError(f"--checkpoint: {e}") from None


def cmd_generate(args: argparse.Namespace) -> None:
    import numpy as np

    from .runtime.simulator import Simulator

    _setup_torch(args.threads)
    out = Path(args.out)
    if out.suffix.lower() not in (".gif", ".mp4", ".mkv", ".mov"):
        raise UsageError(f"--out {args.out}: use a .gif or .mp4 (or .mkv/.mov) file name")
    ds = _dataset(args.data, "--data")
    model = _load_model(args.checkpoint)
    size = model.frame_size
    if tuple(ds.frame_shape) != (size, size, 3):
        raise UsageError(f"--data {args.data}: frames are {list(ds.frame_shape)}, checkpoint {args.checkpoint} "
                         f"expects {size}x{size}x3")
    if not 0 <= args.episode < len(ds):
        raise UsageError(f"--episode {args.episode}: {args.data} has episodes 0..{len(ds) - 1}")
    overrides = _sim_overrides(args, model)
    ep = ds[args.episode]
    if not 1 <= args.context < ep.len:
        raise UsageError(f"--context {args.context}: must be 1..{ep.len - 1} (episode {args.episode} has {ep.len} frames)")
    if args.frames < 1:
        raise UsageError(f"--frames {args.frames}: must be >= 1")
    c = args.context
    if args.actions:
        if args.side_by_side:
            raise UsageError("--side-by-side shows the true frames, so it needs the episode's own actions; drop --actions")
        seq = parse_actions(args.actions, model.action_spec)
        actions = np.resize(np.asarray(seq, dtype=np.int64), args.frames)  # repeated to fill --frames
    else:
        actions = np.array(ep.actions[c : c + args.frames], dtype=np.int64)
        if len(actions) < args.frames:
            print(f"note: episode {args.episode} has only {len(actions)} frames after the context; generating "
                  f"{len(actions)}", file=sys.stderr)
    sim = Simulator(model, batch=1, **overrides)
    sim.reset(np.array(ep.frames[:c]), np.array(ep.actions[:c]))
    t0 = time.perf_counter()
    frames = sim.rollout(actions)  # (N, H, W, 3)
    dt = time.perf_counter() - t0
    if args.side_by_side:
        true = np.array(ep.frames[c : c + len(frames)])
        gap = np.full((len(frames), size, 2, 3), 255, dtype=np.uint8)  # a white line between the two
        frames = np.concatenate([true, gap, frames], axis=2)
    fps = args.fps or float(model.config.get("fps", ds.fps))
    write_video(out, frames, fps)
    names = model.action_spec.names
    shown = ",".join(names[a] for a in actions[:12]) + (",..." if len(actions) > 12 else "")
    print(f"{out}: {len(actions)} frames after {c} context frames of {args.data} episode {args.episode} "
          f"({'true | generated' if args.side_by_side else 'generated'}; actions {shown}); "
          f"{len(actions) / dt:.1f} frames/s")


def format_bench(r: dict[str, Any]) -> str:
    def f(v: Any, unit: str = "", nd: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{nd}f}{unit}"

    lat, rss, sim, m = r["latency_ms"], r["rss_mb"], r["sim"], r["model"]
    rows = [
        ("checkpoint", f"{m['path']}  ({m['dit_params'] / 1e6:.2f} M DiT params, {m['tokens_per_frame']} tokens/frame)"),
        ("run", f"{r['frames']} frames, batch 1, {sim['steps']} sampler steps, window {sim['window']}, "
                f"sink {sim['sink']}, {r['system']['threads']} threads, {r['system']['device']}"),
        ("context", r["context_source"]),
        ("FPS", f(r["fps"], "", 1)),
        ("latency p50/p95/p99", f"{f(lat['p50'])} / {f(lat['p95'])} / {f(lat['p99'])} ms  (mean {f(lat['mean'])}, "
                                f"max {f(lat['max'])})"),
        ("stages (mean)", "  ".join(f"{k.removesuffix('_ms')} {v:.2f} ms" for k, v in r["stages_ms"].items())),
        ("RSS frame 100/200", f"{f(rss['frame_100'], ' MB', 1)} / {f(rss['frame_200'], ' MB', 1)}"),
        ("RSS full window/end", f"{f(rss['full_window'], ' MB', 1)} (frame {r['full_window_frame']}) / "
                                f"{f(rss['end'], ' MB', 1)}"),
        ("RSS growth (full window -> end)", f(r["rss_growth_pct"], " %")),
        ("flatness (last 100 / 100-200)", f(r["flatness_ratio"], "", 3)),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def cmd_bench(args: argparse.Namespace) -> None:
    from .runtime.bench import rollout_bench

    _setup_torch(args.threads)
    if args.frames < 1:
        raise UsageError(f"--frames {args.frames}: must be >= 1")
    model = _load_model(args.checkpoint)
    res = rollout_bench(model, args.frames, _sim_overrides(args, model), seed=args.seed if args.seed is not None else 0)
    print(json.dumps(res) if args.json else format_bench(res))


def _eval_available() -> bool:
    return (Path(__file__).parent / "eval" / "rollout.py").is_file()


def cmd_eval(args: argparse.Namespace) -> None:
    from .eval.rollout import evaluate_rollouts, format_report

    _setup_torch(args.threads)
    data = _existing_dir(args.data, "--data")
    model = _load_model(args.checkpoint)
    res = evaluate_rollouts(model, data, context=args.context, horizon=args.horizon, episodes=args.episodes,
                            batch=args.batch, sim_overrides=_sim_overrides(args, model),
                            seed=args.seed if args.seed is not None else 0, swap=args.swap, progress=_progress())
    if args.out:
        from .config import atomic_write_json

        atomic_write_json(args.out, res)
    print(json.dumps(res) if args.json else format_report(res))


def cmd_doctor(args: argparse.Namespace) -> None:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def ver(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "not installed"

    rows = [("python", f"{platform.python_version()} ({sys.executable})"), ("worldloom", ver("worldloom"))]
    rows += [(p, ver(p)) for p in ("torch", "numpy", "gymnasium", "pymunk", "safetensors", "imageio", "imageio-ffmpeg")]
    try:
        import torch

        torch.set_flush_denormal(True)
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            flags = ""
        bf16 = torch.backends.mkldnn.is_available() and ("avx512_bf16" in flags or "amx_bf16" in flags)
        cap = torch.backends.cpu.get_cpu_capability()
        rows += [("torch threads", f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op "
                                   f"({os.cpu_count()} CPUs)"),
                 ("CPU", f"{platform.processor() or platform.machine()}, torch kernels {cap}"),
                 ("bf16 on CPU", "yes (fast bf16 matmuls)" if bf16 else "no (use fp32)"),
                 ("CUDA", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available")]
    except ImportError as e:
        rows.append(("torch", f"cannot import ({e})"))
    from .checkpoint import bundled_dir, bundled_names

    names = bundled_names()
    rows.append(("bundled checkpoints", f"{', '.join(names) if names else 'none'} (in {bundled_dir()})"))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))


# --- parser ----------------------------------------------------------------------------------------


def _add_sim_args(p: argparse.ArgumentParser) -> None:
    from .runtime.simulator import SimConfig

    add_dataclass_args(p, SimConfig)  # --steps --shift --window --sink --context-noise --seed
    _preset_defaults(p, SimConfig, "", {}, {f.name: "the checkpoint's" for f in dataclasses.fields(SimConfig)})
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")


def _build_collect(p: argparse.ArgumentParser) -> None:
    p.add_argument("env", metavar="ENV", help="'arena' or 'gym:<Gymnasium id>' (discrete actions, e.g. gym:CartPole-v1)")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--episodes", type=int, required=True, help="episodes to record")
    p.add_argument("--steps", type=int, required=True, help="max frames per episode, counting the reset frame")
    p.add_argument("--policy", default="momentum", choices=("momentum", "random"), help="collection policy (default: momentum)")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i; use a disjoint range for held-out data (default: 0)")
    p.add_argument("--frame-size", type=int, default=64, help="side of the square frames, px (default: 64)")
    p.add_argument("--env-kwargs", default=None, help="env config fields as a JSON object, e.g. '{\"n_balls\": 6}'")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.set_defaults(func=cmd_collect)


def _build_import_videos(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="folder of videos (.mp4/.webm/.gif), each with a same-stem .csv or .jsonl action log")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--frame-size", type=int, default=64, help="side of the square frames after centre crop + resize (default: 64)")
    p.add_argument("--fps", type=int, default=None, help="dataset fps (default: read from the videos, which must agree)")
    p.add_argument("--action-names", default=None, help="comma-separated action names, index = id, first = no-op "
                                                         "(needed when the logs use names)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.set_defaults(func=cmd_import_videos)


def _preset_defaults(p: argparse.ArgumentParser, cls: type, prefix: str, presets: dict[str, Any],
                     fixed: dict[str, str] | None = None) -> None:
    """Rewrite the ``(default: X)`` of ``--prefix-*`` options to the presets' values (what is used)."""
    fixed = fixed or {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        dest = (prefix + f.name).replace("-", "_")
        for action in p._actions:
            if action.dest == dest and action.help:
                text = action.help.rsplit(" (default: ", 1)[0]
                if f.name in fixed:
                    action.help = f"{text} (default: {fixed[f.name]})"
                else:
                    vals = ", ".join(f"{name} {getattr(cfg, f.name)}" for name, cfg in presets.items())
                    action.help = f"{text} (preset {vals})"


_PRESET_HELP = ("cpu = the arena recipe's configs (worldloom.recipes.arena, ~an hour on 2 cores); "
                "tiny = very small model and a few steps, for tests")


def _build_train(p: argparse.ArgumentParser) -> None:
    from .models.dit import DynamicsConfig
    from .models.vae import VAEConfig
    from .runtime.simulator import SimConfig
    from .training.dynamics import DynamicsRecipe
    from .training.loop import TrainConfig

    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    tok = sub.add_parser(
        "tokenizer", help="train the VAE tokenizer on a dataset's frames", allow_abbrev=False, formatter_class=fmt,
        description="Train the VAE tokenizer; writes a 'tokenizer' checkpoint to --out (training state in --out/run).\n\n"
                    "Options: --vae-* set VAEConfig fields, --train-* TrainConfig fields; both start from --preset.\n"
                    "--vae-frame-size defaults to the dataset's frame size.\n"
                    "DDP: torchrun --nproc_per_node N -m worldloom.cli train tokenizer ... (same options).")
    tok.add_argument("--data", required=True, help="training dataset directory")
    tok.add_argument("--out", required=True, help="tokenizer checkpoint directory to write")
    tok.add_argument("--heldout", default=None, help="held-out dataset for the reconstruction PSNR (default: training frames)")
    tok.add_argument("--preset", default="cpu", choices=PRESETS, help=f"base configs: {_PRESET_HELP} (default: cpu)")
    tok.add_argument("--resume", action="store_true", help="continue from the training state in the run dir")
    tok.add_argument("--run-dir", default=None, help="training state and log.jsonl (default: OUT/run)")
    add_dataclass_args(tok, VAEConfig, "vae-")
    add_dataclass_args(tok, TrainConfig, "train-")
    tok_presets = {name: tokenizer_preset(name) for name in PRESETS}
    _preset_defaults(tok, VAEConfig, "vae-", {n: c[0] for n, c in tok_presets.items()},
                     {"frame_size": "the dataset's frame size"})
    _preset_defaults(tok, TrainConfig, "train-", {n: c[1] for n, c in tok_presets.items()})
    tok.set_defaults(func=cmd_train_tokenizer)

    dyn = sub.add_parser(
        "dynamics", help="train the causal DiT dynamics model on tokenizer latents", allow_abbrev=False, formatter_class=fmt,
        description="Train the dynamics model; writes a 'worldmodel' checkpoint (tokenizer + DiT) to --out.\n\n"
                    "Options: --dyn-* set DynamicsConfig fields, --recipe-* DynamicsRecipe fields, --train-*\n"
                    "TrainConfig fields, --sim-* the SimConfig saved as the checkpoint's run-time defaults;\n"
                    "all start from --preset. --dyn-latent-channels/--dyn-latent-size default to the tokenizer's,\n"
                    "--dyn-n-actions to the dataset's ActionSpec; --sim-window shrinks to fit --dyn-max-frames.\n"
                    "DDP: torchrun --nproc_per_node N -m worldloom.cli train dynamics ... (same options).")
    dyn.add_argument("--data", required=True, help="training dataset directory")
    dyn.add_argument("--tokenizer", required=True, help="tokenizer checkpoint directory (from `train tokenizer`)")
    dyn.add_argument("--out", required=True, help="world-model checkpoint directory to write")
    dyn.add_argument("--preset", default="cpu", choices=PRESETS, help=f"base configs: {_PRESET_HELP} (default: cpu)")
    dyn.add_argument("--resume", action="store_true", help="continue from the training state in the run dir")
    dyn.add_argument("--run-dir", default=None, help="training state and log.jsonl (default: OUT/run)")
    add_dataclass_args(dyn, DynamicsConfig, "dyn-")
    add_dataclass_args(dyn, DynamicsRecipe, "recipe-")
    add_dataclass_args(dyn, TrainConfig, "train-")
    add_dataclass_args(dyn, SimConfig, "sim-")
    dyn_presets = {name: dynamics_preset(name) for name in PRESETS}
    _preset_defaults(dyn, DynamicsConfig, "dyn-", {n: c[0] for n, c in dyn_presets.items()},
                     {"latent_channels": "the tokenizer's", "latent_size": "the tokenizer's",
                      "n_actions": "the dataset's number of actions"})
    _preset_defaults(dyn, DynamicsRecipe, "recipe-", {n: c[1] for n, c in dyn_presets.items()})
    _preset_defaults(dyn, TrainConfig, "train-", {n: c[2] for n, c in dyn_presets.items()})
    _preset_defaults(dyn, SimConfig, "sim-", {n: SimConfig(**c[3]) for n, c in dyn_presets.items()})
    dyn.set_defaults(func=cmd_train_dynamics)


def _build_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="world-model checkpoint directory or bundled name (e.g. arena)")
    p.add_argument("--data", required=True, help="held-out dataset to take the context from")
    p.add_argument("--episode", type=int, default=0, help="episode index in --data (default: 0)")
    p.add_argument("--context", type=int, default=4, help="context frames (with their actions) from the episode (default: 4)")
    p.add_argument("--frames", type=int, default=32, help="frames to generate (default: 32)")
    p.add_argument("--actions", default=None, help="comma-separated action ids or names, e.g. '4,4,2' or 'right,right,down', "
                                                    "repeated to fill --frames (default: the episode's own next actions)")
    p.add_argument("--out", default="rollout.mp4", help="video to write: .mp4 (ffmpeg) or .gif, upscaled 4x (default: rollout.mp4)")
    p.add_argument("--side-by-side", action="store_true", help="true frames (left) next to generated (right); "
                                                               "needs the episode's own actions")
    p.add_argument("--fps", type=float, default=None, help="video frame rate (default: the checkpoint's)")
    _add_sim_args(p)
    p.set_defaults(func=cmd_generate)


def _build_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="world-model checkpoint directory or bundled name (e.g. arena)")
    p.add_argument("--frames", type=int, default=2000, help="frames to roll out after a 4-frame context (default: 2000)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    _add_sim_args(p)
    p.set_defaults(func=cmd_bench)


def _build_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="world-model checkpoint directory or bundled name (e.g. arena)")
    p.add_argument("--data", required=True, help="held-out dataset")
    p.add_argument("--episodes", type=int, default=50, help="episodes to evaluate (default: 50)")
    p.add_argument("--horizon", type=int, default=32, help="frames generated per episode (default: 32)")
    p.add_argument("--context", type=int, default=4, help="context frames from each episode (default: 4)")
    p.add_argument("--batch", type=int, default=10, help="episodes rolled out together (default: 10)")
    p.add_argument("--swap", default="auto", choices=("auto", "rotate", "roll"),
                   help="wrong actions of the action-swap check: rotate directions a quarter turn, roll actions "
                        "across episodes, or auto (rotate when the action names allow) (default: auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.add_argument("--out", default=None, help="also write the result as JSON to this file")
    _add_sim_args(p)
    p.set_defaults(func=cmd_eval)


def _build_doctor(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=cmd_doctor)


# name -> (one-line help, option builder). Only the selected command's builder runs.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "collect": ("record episodes of an env into a dataset", _build_collect),
    "import-videos": ("import a folder of videos + action logs as a dataset", _build_import_videos),
    "train": ("train the tokenizer or the dynamics model", _build_train),
    "generate": ("roll out a world model from a held-out episode's context and write a video", _build_generate),
    "bench": ("rollout bench: FPS, per-frame latency, memory and flatness of one streaming Simulator", _build_bench),
    "eval": ("score rollouts against held-out episodes", _build_eval),
    "doctor": ("print versions, threads, bf16 support and bundled checkpoints", _build_doctor),
}


def build_parser(argv: Sequence[str] | None = None, *, full: bool = False) -> argparse.ArgumentParser:
    """The parser; builds only the options of the command named in ``argv`` unless ``full``."""
    p = argparse.ArgumentParser(prog="worldloom", allow_abbrev=False,
                                description="worldloom: interactive video world models. Run `worldloom COMMAND --help`.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    for name, (help_, build) in COMMANDS.items():
        if name == "eval" and not _eval_available():
            continue
        sp = sub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".", allow_abbrev=False)
        if full or name == selected:
            build(sp)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"worldloom {__version__}")
        return 0
    if args.command is None or not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE
    args.command_line = _command_line(argv)
    prog = f"worldloom {args.command}" + (f" {args.what}" if getattr(args, "what", None) else "")
    try:
        args.func(args)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `worldloom bench | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as e:  # CheckpointError, DatasetError, config mismatches, missing files
        if os.environ.get("WORLDLOOM_DEBUG"):
            raise
        msg = " ".join(str(e).split("\n"))
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
