"""Data commands: collect, import-videos, import/export-lerobot, encode (the latent cache), and doctor."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .common import (UsageError, _dataset, _existing_dir,
                     _progress)


def cmd_collect(args: argparse.Namespace) -> None:
    from ..data.collect import collect
    from ..data.format import Dataset
    from ..envs.registry import entry, known

    try:
        env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs else None
    except json.JSONDecodeError as e:
        raise UsageError(f"--env-kwargs: not valid JSON ({e})") from None
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise UsageError("--env-kwargs: expected a JSON object, e.g. '{\"n_balls\": 6}'")
    if args.like is not None:  # the world a checkpoint was trained on: its env, settings and frame size
        args.env, like_kwargs, args.frame_size = _world_of(args.like, args.env, args.frame_size)
        env_kwargs = {**like_kwargs, **(env_kwargs or {})}
    if args.env is None:
        raise UsageError("ENV: give an env ('arena', 'phys2d', 'gym:<id>') or --like CHECKPOINT")
    try:
        entry(args.env)
    except ValueError:
        raise UsageError(f"ENV {args.env!r}: expected one of {known()} (e.g. gym:CartPole-v1)") from None
    env_kwargs = _gym_adapter_flags(args, env_kwargs)
    t0 = time.time()
    try:
        out = collect(args.env, args.out, args.episodes, args.steps, policy=args.policy, seed=args.seed,
                      frame_size=args.frame_size, env_kwargs=env_kwargs, progress=_progress(), overwrite=args.overwrite,
                      axis_ranges=_axis_ranges(args.axis_range))
    except ValueError as e:
        if "axis_ranges" not in str(e):
            raise
        raise UsageError(str(e).replace("axis_ranges", "--axis-range", 1)) from None
    ds = Dataset.open(out)
    print(f"collected {len(ds)} episodes, {ds.n_frames} frames of {args.env} -> {out} ({time.time() - t0:.1f} s)")


def _axis_ranges(specs: list[str] | None) -> dict[str, tuple[float, float]] | None:
    """``--axis-range NAME=LO:HI`` (repeatable) -> {name: (lo, hi)}."""
    out: dict[str, tuple[float, float]] = {}
    for spec in specs or ():
        name, eq, rng = spec.partition("=")
        lo, colon, hi = rng.partition(":")
        try:
            if not (eq and colon and name):
                raise ValueError
            out[name] = (float(lo), float(hi))
        except ValueError:
            raise UsageError(f"--axis-range {spec!r}: expected NAME=LO:HI, e.g. gas=0.3:0.8 or brake=0:0") from None
        if out[name][0] > out[name][1]:
            raise UsageError(f"--axis-range {spec!r}: LO must be <= HI")
    return out or None


def _gym_adapter_flags(args: argparse.Namespace, env_kwargs: dict | None) -> dict | None:
    """--fit/--frame-skip/--sticky-actions/--env-module/--keys into env_kwargs["adapter"] (gym:<id> envs
    only); flags left out keep what --env-kwargs or --like gave, the rest take the wrapper's defaults."""
    from ..envs.gym import ADAPTER_KEY, adapter_options
    from ..envs.keys import check_keys, parse_keys, split_binding

    axis_names = None if args.axis_names is None else [n.strip() for n in args.axis_names.split(",")]
    given = {"--fit": args.fit, "--frame-skip": args.frame_skip, "--sticky-actions": args.sticky_actions,
             "--env-module": args.env_module, "--keys": args.keys, "--axis-names": axis_names}
    given = {flag: v for flag, v in given.items() if v is not None}
    if not given:
        return env_kwargs
    if not args.env.startswith("gym:"):
        raise UsageError(f"{next(iter(given))}: only for gym:<id> envs, not {args.env!r}")
    if args.frame_skip is not None and args.frame_skip < 1:
        raise UsageError(f"--frame-skip {args.frame_skip}: must be >= 1 (1 = every env step)")
    if args.sticky_actions is not None and not 0.0 <= args.sticky_actions < 1.0:
        raise UsageError(f"--sticky-actions {args.sticky_actions}: must be a probability in [0, 1)")
    keys = None
    if args.keys is not None:
        try:
            keys = parse_keys(args.keys)
        except ValueError as e:
            raise UsageError(f"--keys: {e}") from None
    kwargs = dict(env_kwargs or {})
    adapter = kwargs.get(ADAPTER_KEY) or {}
    if not isinstance(adapter, dict):
        raise UsageError(f"--env-kwargs: '{ADAPTER_KEY}' must be an object, got {adapter!r}")
    adapter = dict(adapter)
    for field, value in (("fit", args.fit), ("frame_skip", args.frame_skip), ("sticky_actions", args.sticky_actions),
                         ("env_module", args.env_module), ("axis_names", axis_names)):
        if value is not None:
            adapter[field] = value
    if keys is not None:  # per action on top of --like's / --env-kwargs' override, whose keys it may take over
        claimed = {split_binding(k)[0] for ks in keys.values() for k in ks}
        prior = adapter.get("keys") or {}
        if not isinstance(prior, dict):
            raise UsageError(f"--env-kwargs: '{ADAPTER_KEY}.keys' must be an object, got {prior!r}")
        try:
            prior = check_keys(prior)
        except ValueError as e:
            raise UsageError(f"--env-kwargs: '{ADAPTER_KEY}.keys': {e}") from None
        prior = {n: [k for k in ks if split_binding(k)[0] not in claimed] for n, ks in prior.items() if n not in keys}
        adapter["keys"] = {**prior, **keys}
    try:
        kwargs[ADAPTER_KEY] = adapter_options(adapter)
    except ValueError as e:
        raise UsageError(f"--env-kwargs: {e}") from None
    return kwargs


def _world_of(checkpoint: str, env: str | None, frame_size: int | None) -> tuple[str, dict, int]:
    """(env id, env kwargs, frame size) from a checkpoint's config.json; ENV and --frame-size must agree with it."""
    from ..checkpoint import CheckpointError, resolve
    from ..config import read_json

    try:
        path = resolve(checkpoint) / "config.json"
        config = read_json(path)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        raise UsageError(f"--like: {e}") from None
    like_env, kwargs = config.get("env"), config.get("env_kwargs") or {}
    size = (config.get("vae") or {}).get("frame_size")
    if not isinstance(like_env, str) or not isinstance(kwargs, dict) or not isinstance(size, int):
        raise UsageError(f"--like {checkpoint}: {path} names no env, env_kwargs object and vae.frame_size to collect from")
    if env is not None and env != like_env:
        raise UsageError(f"ENV {env!r} differs from --like {checkpoint}'s env {like_env!r}: give one of them")
    if frame_size is not None and frame_size != size:
        raise UsageError(f"--frame-size {frame_size} differs from --like {checkpoint}'s {size}")
    return like_env, dict(kwargs), size


def cmd_import_videos(args: argparse.Namespace) -> None:
    from ..data.format import Dataset
    from ..data.video_import import import_videos

    _existing_dir(args.src, "SRC")
    names = [n.strip() for n in args.action_names.split(",")] if args.action_names else None
    out = import_videos(args.src, args.out, frame_size=args.frame_size, fps=args.fps, action_names=names,
                        overwrite=args.overwrite)
    ds = Dataset.open(out)
    print(f"imported {len(ds)} videos, {ds.n_frames} frames -> {out} ({ds.action_spec.n} actions, {ds.fps} fps)")


def _episode_list(text: str | None) -> list[int] | None:
    """``--episodes`` of import-lerobot: "0,3,7", "0:10" (end excluded) or a mix; None = all."""
    if not text:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition(":")
            out += list(range(int(lo), int(hi))) if hi else [int(lo)]
    except ValueError:
        raise UsageError(f"--episodes {text!r}: expected ids like 0,3,7 or ranges like 0:10") from None
    return out


def cmd_import_lerobot(args: argparse.Namespace) -> None:
    from ..data.format import Dataset
    from ..data.lerobot import LeRobotError, import_lerobot

    _existing_dir(args.src, "SRC")
    try:
        out = import_lerobot(args.src, args.out, camera=args.camera, action_key=args.action_key,
                             episodes=_episode_list(args.episodes), frame_size=args.frame_size, fit=args.fit,
                             every=args.every, target_fps=args.fps, overwrite=args.overwrite)
    except LeRobotError as e:
        raise UsageError(str(e)) from None
    ds = Dataset.open(out)
    spec = ds.action_spec
    print(f"imported {len(ds)} episodes, {ds.n_frames} frames at {ds.fps} fps -> {out} "
          f"({spec.n_axes} axes {[a.name for a in spec.axes]}, {spec.n} discrete actions)")


def cmd_export_lerobot(args: argparse.Namespace) -> None:
    from ..data.lerobot import LeRobotError, export_lerobot

    _existing_dir(args.data, "DATA")
    try:
        out = export_lerobot(args.data, args.out, camera=args.camera)
    except LeRobotError as e:
        raise UsageError(str(e)) from None
    print(f"exported {args.data} -> {out} (LeRobot v3.0, camera {args.camera})")


def cmd_encode(args: argparse.Namespace) -> None:
    import time

    from ..hardware import setup_cpu
    from ..training.init import load_tokenizer
    from ..training.latents import INDEX, cache_dir, encode_to_cache

    _dataset(args.data, "--data")  # a missing or broken dataset fails before the tokenizer loads
    setup_cpu(args.threads)
    vae, _ = load_tokenizer(args.tokenizer)
    dest = cache_dir(vae, args.data)
    if (dest / INDEX).is_file() and not args.overwrite:
        print(f"{args.data}: already encoded by this tokenizer -> {dest} (--overwrite to redo)")
        return
    t = time.time()
    out = encode_to_cache(vae, args.data, batch=args.batch)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"encoded {args.data} with {args.tokenizer} -> {out} ({size / 2**20:.1f} MiB, {time.time() - t:.1f} s); "
          "train dynamics and distill on this data now read it from disk")


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

        from ..hardware import cpu_has_bf16, setup_cpu

        setup_cpu()
        bf16 = cpu_has_bf16()
        cap = torch.backends.cpu.get_cpu_capability()
        rows += [("torch threads", f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op "
                                   f"({os.cpu_count()} CPUs)"),
                 ("CPU", f"{platform.processor() or platform.machine()}, torch kernels {cap}"),
                 ("bf16 on CPU", "yes (fast bf16 matmuls)" if bf16 else "no (use fp32)"),
                 ("CUDA", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available")]
    except ImportError as e:
        rows.append(("torch", f"cannot import ({e})"))
    from ..checkpoint import bundled_dir, bundled_names

    names = bundled_names()
    rows.append(("bundled checkpoints", f"{', '.join(names) if names else 'none'} (in {bundled_dir()})"))
    if args.preset:
        import json

        from ..training.footprint import gib, preset_report

        for flag, v in (("--batch", args.batch), ("--frames", args.frames), ("--gpus", args.gpus)):
            if v is not None and v < 1:
                raise UsageError(f"{flag} must be >= 1, got {v}")
        try:
            rep = preset_report(args.preset, args.batch, args.frames, args.gpus, args.parallel)
        except ValueError as e:
            raise UsageError(f"--preset {args.preset}: {e}") from None
        if args.json:
            print(json.dumps(rep, indent=2))
            return
        rows += [(f"preset {args.preset}", f"{rep['params'] / 1e6:.1f} M DiT parameters, {rep['tokens_per_frame']} tokens/frame, "
                                           f"{rep['frame_px']} px, tokenizer {rep['tokenizer_params'] / 1e6:.1f} M"),
                 ("per device", f"batch {rep['batch_per_device']} x {rep['frames']} frames, {rep['precision']}, "
                                f"checkpointing {'on' if rep['checkpointing'] else 'off'}, {args.parallel} over {args.gpus}")]
        rows += [(f"  {k}", gib(rep[k])) for k in ("weights", "grads", "optimizer", "ema", "activations", "tokenizer_weights", "total")]
        rows += [("  activations/sample", gib(rep["activations_per_sample"])), ("  KV cache at play", gib(rep["kv_cache_play"]))]
        if "cuda" in rep:
            c = rep["cuda"]
            rows.append(("  CUDA step", f"{c['step_s'] * 1e3:.1f} ms, peak {gib(c['peak_allocated'])} ({c['device']})"))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))


def _build_collect(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("examples:\n  worldloom collect arena --out runs/arena/data-train\n"
                "  worldloom collect --like arena --out runs/arena/data-val --episodes 60 --steps 64 --seed 8000000\n"
                "  worldloom collect gym:ALE/Pong-v5 --out runs/pong/data --episodes 40 --frame-skip 4 --fit pad\n"
                "  worldloom collect gym:CarRacing-v3 --out runs/car/data --axis-names steer,gas,brake "
                "--axis-range gas=0.1:0.5 --axis-range brake=0:0")
    p.add_argument("env", metavar="ENV", nargs="?", default=None,
                   help="'arena', 'phys2d' or 'gym:<Gymnasium id>' (discrete or Box actions, e.g. gym:CartPole-v1, "
                        "gym:ALE/Pong-v5, gym:MiniGrid-Empty-5x5-v0, gym:CarRacing-v3); may be left out with --like")
    p.add_argument("--like", default=None, metavar="CHECKPOINT",
                   help="collect the world a checkpoint was trained on (its env, env_kwargs and frame size), e.g. fresh "
                        "held-out layouts for `eval --data`; --env-kwargs overrides single fields")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--episodes", type=int, default=None, help="episodes to record (default: the env registration's, else 20)")
    p.add_argument("--steps", type=int, default=None,
                   help="max frames per episode, counting the reset frame (default: the env registration's, else 300)")
    p.add_argument("--policy", default=None, choices=("momentum", "random"),
                   help="collection policy (default: the env registration's, else momentum)")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i; use a disjoint range for held-out data (default: 0)")
    p.add_argument("--frame-size", type=int, default=None, help="side of the square frames, px (default: --like's, else the env registration's, else 64)")
    p.add_argument("--env-kwargs", default=None, help="env config fields as a JSON object, e.g. '{\"n_balls\": 6}'")
    p.add_argument("--axis-range", action="append", default=None, metavar="NAME=LO:HI",
                   help="continuous axes: drive axis NAME only within LO:HI while collecting (repeatable; LO = HI holds "
                        "it); the model's range stays the env's, e.g. --axis-range gas=0.3:0.8 --axis-range brake=0:0")
    g = p.add_argument_group("gym:<id> envs", "how a Gymnasium env is framed and stepped (recorded in meta.json "
                                              "under env_kwargs.adapter)")
    g.add_argument("--fit", default=None, choices=("pad", "crop", "stretch"),
                   help="fitting frames into the square: pad (letterbox with black, aspect kept; default), crop "
                        "(centre square) or stretch (whole frame squeezed)")
    g.add_argument("--frame-skip", type=int, default=None, metavar="K",
                   help="repeat each action for K env steps, keep the last frame, sum rewards (default: 1)")
    g.add_argument("--sticky-actions", type=float, default=None, metavar="P",
                   help="with probability P per env step the env repeats its previous action (Machado et al. 2018); "
                        "seeded by the episode seed (default: 0)")
    g.add_argument("--env-module", default=None, metavar="MODULE",
                   help="import MODULE before making the env (a plugin that registers the id; ALE, MiniGrid … are "
                        "found without it)")
    g.add_argument("--keys", default=None, metavar="SPEC",
                   help="play keys per action name, replacing the derived ones: 'FIRE=space,UP=ArrowUp|w,NOOP=' "
                        "or a JSON object '{\"FIRE\": [\" \", \"f\"]}' (DOM KeyboardEvent.key names); per axis "
                        "'steer=ArrowLeft:-1|ArrowRight:1' (value while held) or 'steer=MouseX:0.01' (the pointer)")
    g.add_argument("--axis-names", default=None, metavar="A,B,...",
                   help="names of a Box action's axes, which Gymnasium spaces do not carry (default: axis_0, axis_1 …), "
                        "e.g. steer,gas,brake for CarRacing")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.set_defaults(func=cmd_collect)


def _build_import_videos(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="folder of videos (.mp4/.webm/.gif), each with a same-stem .csv or .jsonl action log")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--frame-size", type=int, default=64, help="side of the square frames after centre crop + resize (default: 64)")
    p.add_argument("--fps", type=float, default=None, help="dataset fps, e.g. 10 or 29.97 (default: read from the videos, which must agree)")
    p.add_argument("--action-names", default=None, help="comma-separated action names, index = id, first = no-op "
                                                         "(needed when the logs use names)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.set_defaults(func=cmd_import_videos)


def _build_import_lerobot(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("src", metavar="SRC", help="local LeRobot v3 dataset directory (meta/info.json, data/, videos/)")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--camera", default=None, help="video feature to use, e.g. observation.images.top (default: the only one)")
    p.add_argument("--action-key", default="action", help="float feature holding the continuous action (default: action)")
    p.add_argument("--episodes", default=None, help="episode ids to import: 0,3,7 or 0:10 (default: all)")
    p.add_argument("--frame-size", type=int, default=64, help="side of the square frames (default: 64)")
    p.add_argument("--fit", default="pad", choices=("pad", "crop", "stretch"), help="how frames become square (default: pad)")
    p.add_argument("--every", type=int, default=1, help="keep every k-th frame: fps / k (default: 1)")
    p.add_argument("--fps", type=float, default=None,
                   help="resample to this frame rate, at most the dataset's (the last frame shown at each output "
                        "time; axes averaged over the commands between kept frames); instead of --every")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.epilog = ("Reads with pyarrow and PyAV: pip install 'worldloom[lerobot]'. LeRobot's action[t] leads from\n"
                "frame t to t+1, so the dataset's axes[t] = action[t-1] (docs/DATA.md).\n\nexample:\n"
                "  worldloom import-lerobot ~/data/pusht --camera observation.image --every 2 --out data/pusht")
    p.set_defaults(func=cmd_import_lerobot)


def _build_export_lerobot(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", metavar="DATA", help="worldloom dataset directory")
    p.add_argument("--out", required=True, help="LeRobot v3 dataset directory to create (must be empty or absent)")
    p.add_argument("--camera", default="observation.images.main", help="video feature name (default: observation.images.main)")
    p.set_defaults(func=cmd_export_lerobot)


def _build_encode(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset directory")
    p.add_argument("--tokenizer", required=True, help="tokenizer or world-model checkpoint (name or path) whose VAE encodes")
    p.add_argument("--batch", type=int, default=256, help="frames per encoder pass (default: 256)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--overwrite", action="store_true", help="encode again even if this tokenizer's cache exists")
    p.epilog = ("Writes DATA/latents/<key>/ (float16 latents.npy, actions, index.json; key = hash of the tokenizer's weights\n"
                "and the dataset's meta.json). train dynamics and distill then memory-map it instead of encoding into RAM.\n\n"
                "example:\n  worldloom encode --data runs/arena/data-train --tokenizer checkpoints/arena")
    p.set_defaults(func=cmd_encode)


def _build_doctor(p: argparse.ArgumentParser) -> None:
    from ..recipes.presets import NAMES

    p.add_argument("--preset", default=None, choices=NAMES,
                   help="also estimate the memory a dynamics training run of this preset needs per device (meta device, no "
                        "allocation; on a CUDA machine also one timed step)")
    p.add_argument("--batch", type=int, default=None, help="clips per device (default: the preset's batch size)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: the preset's clip length)")
    p.add_argument("--gpus", type=int, default=1, help="devices the run is spread over (default: 1)")
    p.add_argument("--parallel", default="ddp", choices=("ddp", "fsdp"), help="ddp keeps every weight on every device, "
                   "fsdp shards weights, gradients and optimizer state (default: ddp)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.set_defaults(func=cmd_doctor)


# name -> (one-line help, option builder). Only the selected command's builder runs.
