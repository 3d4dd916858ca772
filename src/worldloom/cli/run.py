"""Commands that run a trained world model: generate, bench, play (eval: cli/evaluate.py), and the model
loading and sampler options they and eval share."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..config import add_dataclass_args
from ..hardware import setup_cpu
from .common import UsageError, _dataset, _fields_given, _preset_defaults, _progress, add_speed_arguments, speed_options


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


def _sim_overrides(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """The SimConfig options given, checked against the model (named in the error if they don't fit)."""
    from ..runtime.simulator import SimConfig

    given = _fields_given(SimConfig, args)
    cfg = dataclasses.replace(model.sim, **given)
    for fields, why in cfg.problems(model.dit.cfg.max_frames):  # the checkpoint's own are checked at load
        said = [f"--{f.replace('_', '-')} {getattr(cfg, f)}" if f in given else f"the checkpoint's sim.{f} {getattr(cfg, f)}"
                for f in fields]
        raise UsageError(" / ".join(said) + f": {why}")
    return given


def _load_model(path: str, args: argparse.Namespace | None = None) -> Any:
    from ..checkpoint import CheckpointError
    from ..runtime.loading import load

    try:
        return load(path, **(speed_options(args) if args is not None else {}))
    except CheckpointError as e:
        raise UsageError(f"--checkpoint: {e}") from None
    except ValueError as e:  # a device this machine lacks, or a precision the device cannot run
        given = speed_options(args) if args is not None else {}
        said = " / ".join(f"--{k} {given[k]}" for k in ("device", "precision") if k in given) or "--checkpoint"
        raise UsageError(f"{said}: {e}") from None


def cmd_generate(args: argparse.Namespace) -> None:
    import numpy as np

    from ..runtime.simulator import Simulator

    setup_cpu(args.threads)
    out = Path(args.out)
    if out.suffix.lower() not in (".gif", ".mp4", ".mkv", ".mov"):
        raise UsageError(f"--out {args.out}: use a .gif or .mp4 (or .mkv/.mov) file name")
    ds = _dataset(args.data, "--data")
    model = _load_model(args.checkpoint, args)
    size = model.frame_size
    if tuple(ds.frame_shape) != (size, size, 3):
        raise UsageError(f"--data {args.data}: frames are {list(ds.frame_shape)}, checkpoint {args.checkpoint} "
                         f"expects {size}x{size}x3")
    try:
        model.action_spec.require_same(ds.action_spec, mine=f"checkpoint {args.checkpoint}", theirs=f"--data {args.data}")
    except ValueError as e:
        raise UsageError(str(e)) from None
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
    from ..video import VIDEO_SCALE, write_video

    write_video(out, frames, fps, scale=VIDEO_SCALE)
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
                f"sink {sim['sink']}, memory {sim.get('memory', 'window')}, {r['system']['threads']} threads, "
                f"{r['system']['device']}"),
        ("context", r["context_source"]),
        ("FPS", f(r["fps"], "", 1)),
        ("latency p50/p95/p99", f"{f(lat['p50'])} / {f(lat['p95'])} / {f(lat['p99'])} ms  (mean {f(lat['mean'])}, "
                                f"max {f(lat['max'])})"),
        ("stages (mean)", "  ".join(f"{k.removesuffix('_ms')} {v:.2f} ms" for k, v in r["stages_ms"].items())),
        ("RSS frame 100/200", f"{f(rss['frame_100'], ' MB', 1)} / {f(rss['frame_200'], ' MB', 1)}"),
        ("RSS full window/end", f"{f(rss['full_window'], ' MB', 1)} (frame {r['full_window_frame']}) / "
                                f"{f(rss['end'], ' MB', 1)}"),
        ("RSS growth (full window -> end)", f(r["rss_growth_pct"], " %")),
        ("flatness (median, last span / from frame 100)", f(r["flatness_ratio"], "", 3)),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def cmd_bench(args: argparse.Namespace) -> None:
    from ..runtime.bench import rollout_bench

    setup_cpu(args.threads)
    if args.frames is None:
        args.frames = 300 if args.mode == "matrix" else 2000
    if args.frames < 1:
        raise UsageError(f"--frames {args.frames}: must be >= 1")
    if args.mode == "matrix":
        _bench_matrix(args)
        return
    if args.mode == "ws":
        from ..serve.bench_ws import format_table, ws_bench

        model = _load_model(args.checkpoint)  # validates the name before a server starts
        res = ws_bench(args.checkpoint, frames=args.frames, fps=args.fps, sim_overrides=_sim_overrides(args, model),
                       speed=speed_options(args), threads=max(1, args.threads), client_process=args.client == "process")
        print(json.dumps(res) if args.json else format_table(res))
        return
    model = _load_model(args.checkpoint, args)
    res = rollout_bench(model, args.frames, _sim_overrides(args, model), seed=args.seed if args.seed is not None else 0)
    print(json.dumps(res) if args.json else format_bench(res))


def _csv(text: str, opt: str, cast: Any) -> tuple[Any, ...]:
    try:
        out = tuple(cast(t.strip()) for t in text.split(",") if t.strip())
    except (ValueError, KeyError):
        out = ()
    if not out:
        raise UsageError(f"{opt} {text!r}: expected a comma-separated list")
    return out


def _bench_matrix(args: argparse.Namespace) -> None:
    from ..eval.matrix import run_speed_matrix
    from ..eval.report import format_summary
    from ..eval.suite import clean

    steps = _csv(args.steps_list, "--steps-list", int)
    modes = _csv(args.compile_modes, "--compile-modes", lambda t: {"off": False, "on": True}[t])
    _load_model(args.checkpoint, args)  # a bad name or device fails here, before minutes of work
    if args.base_checkpoint:
        _load_model(args.base_checkpoint)
    try:
        res = run_speed_matrix(args.checkpoint, steps_list=steps, precisions=_csv(args.precisions, "--precisions", str),
                               compiles=modes, frames=args.frames, quality_episodes=args.quality_episodes,
                               causality_episodes=args.causality_episodes, base_steps=args.base_steps,
                               base_checkpoint=args.base_checkpoint, progress=_progress(), device=args.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(json.dumps(clean(res.to_json())) if args.json else format_summary([res], {}))


def _add_sim_args(p: argparse.ArgumentParser) -> None:
    from ..runtime.simulator import SimConfig

    add_dataclass_args(p, SimConfig)  # --steps --shift --window --sink --context-noise --seed
    add_speed_arguments(p)  # --device --precision --compile
    _preset_defaults(p, SimConfig, "", {}, {f.name: "the checkpoint's" for f in dataclasses.fields(SimConfig)})
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads (0 = torch default; ws mode: the server worker's, 0 = 1 as in play)")


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
    p.add_argument("--frames", type=int, default=None,
                   help="frames to roll out after a 4-frame context (default: 2000; matrix: 300 per row)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--mode", choices=("rollout", "ws", "matrix"), default="rollout",
                   help="rollout: one in-process Simulator (memory/flatness); ws: play the frames through a real "
                        "WebSocket of the play server (FPS, action-to-frame latency, stages); matrix: one row per "
                        "--steps-list x --precisions x --compile-modes with speed and quality kept vs the many-step "
                        "fp32 base (default: rollout)")
    p.add_argument("--steps-list", default="1,2,16", help="matrix: sampler steps to try (default: 1,2,16)")
    p.add_argument("--precisions", default="fp32,bf16,int8", help="matrix: precisions to try (default: fp32,bf16,int8)")
    p.add_argument("--compile-modes", default="off", help="matrix: off, on or off,on (default: off)")
    p.add_argument("--base-steps", type=int, default=16,
                   help="matrix: sampler steps of the fp32 base row everything is compared with (default: 16)")
    p.add_argument("--base-checkpoint", default=None,
                   help="matrix: checkpoint of the base row (default: --checkpoint; for a distilled student: its teacher)")
    p.add_argument("--quality-episodes", type=int, default=2,
                   help="matrix: fidelity episodes per row for PSNR at h=32/512 (0 = skip; default: 2)")
    p.add_argument("--causality-episodes", type=int, default=4,
                   help="matrix: causality contexts per row for action following (0 = skip; default: 4)")
    p.add_argument("--fps", type=float, default=None,
                   help="ws mode: the server's target frame rate (default: unpaced, one frame per action)")
    p.add_argument("--client", choices=("process", "thread"), default="process",
                   help="ws mode: run the player in its own process, as a browser is (default), or in a thread "
                        "of the server's process")
    _add_sim_args(p)
    p.set_defaults(func=cmd_bench)
