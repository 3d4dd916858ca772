"""Data commands: collect, import-videos, and doctor (what is installed)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .common import (UsageError, _existing_dir,
                     _progress)


def cmd_collect(args: argparse.Namespace) -> None:
    from ..data.collect import collect
    from ..data.format import Dataset
    from ..envs import KNOWN_IDS

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
    if args.env not in KNOWN_IDS and not args.env.startswith("gym:"):
        raise UsageError(f"ENV {args.env!r}: expected one of {list(KNOWN_IDS)} or 'gym:<Gymnasium id>' (e.g. gym:CartPole-v1)")
    t0 = time.time()
    args.frame_size = 64 if args.frame_size is None else args.frame_size
    out = collect(args.env, args.out, args.episodes, args.steps, policy=args.policy, seed=args.seed,
                  frame_size=args.frame_size, env_kwargs=env_kwargs, progress=_progress(), overwrite=args.overwrite)
    ds = Dataset.open(out)
    print(f"collected {len(ds)} episodes, {ds.n_frames} frames of {args.env} -> {out} ({time.time() - t0:.1f} s)")


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
    from ..checkpoint import bundled_dir, bundled_names

    names = bundled_names()
    rows.append(("bundled checkpoints", f"{', '.join(names) if names else 'none'} (in {bundled_dir()})"))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))


def _build_collect(p: argparse.ArgumentParser) -> None:
    p.add_argument("env", metavar="ENV", nargs="?", default=None,
                   help="'arena', 'phys2d' or 'gym:<Gymnasium id>' (discrete actions, e.g. gym:CartPole-v1); may be left out with --like")
    p.add_argument("--like", default=None, metavar="CHECKPOINT",
                   help="collect the world a checkpoint was trained on (its env, env_kwargs and frame size), e.g. fresh "
                        "held-out layouts for `eval --data`; --env-kwargs overrides single fields")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--episodes", type=int, required=True, help="episodes to record")
    p.add_argument("--steps", type=int, required=True, help="max frames per episode, counting the reset frame")
    p.add_argument("--policy", default="momentum", choices=("momentum", "random"), help="collection policy (default: momentum)")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed + i; use a disjoint range for held-out data (default: 0)")
    p.add_argument("--frame-size", type=int, default=None, help="side of the square frames, px (default: 64, or --like's)")
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


def _build_doctor(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=cmd_doctor)


# name -> (one-line help, option builder). Only the selected command's builder runs.
