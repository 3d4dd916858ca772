"""``worldloom play``: its options, the checks of what a user can get wrong, then the play server
(:func:`worldloom.serve.app.run`)."""

from __future__ import annotations

import argparse
import sys

from .common import add_speed_arguments, speed_options


def add_play_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``worldloom play``."""
    parser.add_argument("--checkpoint", action="append", default=None,
                        help="bundled name or checkpoint dir; repeat to offer several (first = default; default: arena)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="bind address (default 127.0.0.1: this machine only); any other needs the random token "
                             "printed in the URL")
    parser.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                        help="also accept pages from ORIGIN (http(s)://host[:port]), and ORIGIN's host:port as the "
                             "Host (a name or port forward this server is reached by); repeatable. Default: only "
                             "localhost, 127.0.0.1, [::1] and the bound host, on the server's port")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--fps", type=float, default=30.0, help="target frames/s per player (0 = one frame per action)")
    parser.add_argument("--max-sessions", type=int, default=4, help="players at once; more get 'busy' (default 4)")
    parser.add_argument("--idle-timeout", type=float, default=60.0, help="free a session after this many s without input")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps per frame (default: the checkpoint's)")
    parser.add_argument("--window", type=int, default=None, help="rolling context window (default: the checkpoint's)")
    parser.add_argument("--sink", type=int, default=None, help="attention-sink frames (default: the checkpoint's)")
    parser.add_argument("--memory", default=None, help="context policy beyond the window: window, sink, place, place_first, place_early, similar, similar_aligned or "
                                                       "successor (default: the checkpoint's; docs/PROTOCOL.md)")
    parser.add_argument("--memory-slots", type=int, default=None, help="memory frames attended per step (default: the checkpoint's)")
    parser.add_argument("--memory-pose", default=None, choices=("auto", "frames", "actions"),
                        help="where place memories read the camera pose: the checkpoint's odometry ('actions'), the "
                             "generated frames ('frames') or 'auto' (actions where the checkpoint has an odometry; default)")
    add_speed_arguments(parser)
    parser.add_argument("--keys", default=None, metavar="SPEC",
                        help="rebind play keys: 'FIRE=space,UP=ArrowUp|w' for actions, 'steer=ArrowLeft:-1|ArrowRight:1' "
                             "or 'steer=MouseX:0.01' (units per px moved in a frame) for axes; docs/PROTOCOL.md")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads of the inference worker (default 1; see docs/BENCHMARKS.md)")
    parser.add_argument("--open", action=argparse.BooleanOptionalAction, default=True,
                        help="open the page in the default browser, if there is one (default: yes)")


def play_main(args: argparse.Namespace) -> int:
    """Check what a user can get wrong, then serve. Returns an exit code (2 = usage error)."""
    from ..checkpoint import CheckpointError, resolve
    from ..serve.app import run
    from ..serve.guard import parse_origin

    cks = args.checkpoint or ["arena"]
    problems = []
    for c in cks:
        try:
            resolve(c)
        except CheckpointError as e:
            problems.append(str(e))
    if not 0 <= args.port <= 65535:
        problems.append(f"--port must be in 0..65535, got {args.port}")
    if args.fps < 0 or args.max_sessions < 1 or args.idle_timeout <= 0:
        problems.append("--fps must be >= 0, --max-sessions >= 1 and --idle-timeout > 0")
    if args.threads < 1:
        problems.append(f"--threads must be >= 1, got {args.threads}")
    for origin in args.allow_origin or []:
        try:
            parse_origin(origin)
        except ValueError as e:
            problems.append(f"--allow-origin: {e}")
    for k in ("steps", "window", "sink", "memory_slots"):
        v = getattr(args, k, None)
        if v is not None and v < (0 if k == "sink" else 1):
            problems.append(f"--{k.replace('_', '-')} must be >= {0 if k == 'sink' else 1}, got {v}")
    from ..memory import MEMORIES

    if args.memory is not None and args.memory not in MEMORIES:
        problems.append(f"--memory {args.memory!r}: unknown; known: {', '.join(MEMORIES)}")
    keys = None
    if args.keys is not None:
        keys = _check_play_keys(args.keys, cks, problems)
    if problems:
        print("worldloom play: " + "; ".join(problems), file=sys.stderr)
        return 2
    overrides = {k: getattr(args, k) for k in ("steps", "window", "sink", "memory", "memory_slots", "memory_pose")
                 if getattr(args, k, None) is not None}
    try:
        run(cks, host=args.host, port=args.port, fps=args.fps, max_sessions=args.max_sessions,
            idle_timeout=args.idle_timeout, sim_overrides=overrides or None, open_browser=args.open,
            speed=speed_options(args), threads=args.threads, allow_origins=args.allow_origin, keys=keys)
    except KeyboardInterrupt:
        pass
    return 0


def _check_play_keys(text: str, checkpoints: list[str], problems: list[str]) -> dict[str, list[str]] | None:
    """``--keys`` parsed and tried on each checkpoint's ActionSpec (read from its config, no weights
    loaded), so a name no checkpoint has is one usage line, not a traceback after loading."""
    from ..actions import ActionSpec
    from ..checkpoint import CheckpointError, read_config, resolve
    from ..envs.keys import apply_spec_keys, parse_keys

    try:
        keys = parse_keys(text)
    except ValueError as e:
        problems.append(f"--keys: {e}")
        return None
    for c in checkpoints:
        try:
            _, cfg = read_config(resolve(c))
            apply_spec_keys(ActionSpec.from_dict(cfg["action_spec"], f"{c}: action_spec"), keys, c)
        except (CheckpointError, KeyError):
            continue  # reported above, or a checkpoint without a spec: load() says so
        except ValueError as e:
            problems.append(str(e))
    return keys


def cmd_play(args: argparse.Namespace) -> None:
    rc = play_main(args)
    if rc:
        raise SystemExit(rc)


def _build_play(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("examples:\n  worldloom play                      (the bundled arena, http://127.0.0.1:8000/)\n"
                "  worldloom play --checkpoint runs/arena/wm --checkpoint arena --port 8080")
    add_play_arguments(p)
    p.set_defaults(func=cmd_play)
