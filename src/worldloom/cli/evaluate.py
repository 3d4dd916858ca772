"""``worldloom eval``: held-out rollouts of a dataset (``--data``) or the evaluation suites (``--suite``).

Without ``--suite``, ``--data`` runs the held-out rollout eval (eval/rollout.py) and prints its markdown
report; with ``--suite`` (or ``--report``) the suites run through eval/suites.py, each failure reported
while the others go on, with an HTML report and one results JSON. Model loading and the sampler options
are the other run commands' (cli/run.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..hardware import setup_cpu
from .common import UsageError, _existing_dir, _progress
from .run import _add_sim_args, _csv, _load_model, _sim_overrides


def cmd_eval(args: argparse.Namespace) -> None:
    if args.suite is None and args.data is not None:
        if args.report is None:
            _eval_heldout(args)  # the foundation issue's command, unchanged: --data without --suite
            return
        args.suite = "rollout"  # --data --report: the same eval as a suite, with its page
    _eval_suites(args)


def _eval_heldout(args: argparse.Namespace) -> None:
    from ..eval.rollout import evaluate_rollouts, format_report

    setup_cpu(args.threads)
    data = _existing_dir(args.data, "--data")
    model = _load_model(args.checkpoint, args)
    res = evaluate_rollouts(model, data, context=args.context, horizon=args.horizon, episodes=args.episodes, start=args.start,
                            batch=args.batch, sim_overrides=_sim_overrides(args, model),
                            seed=args.seed if args.seed is not None else 0, swap=args.swap, progress=_progress())
    if args.out:
        from ..config import atomic_write_json

        atomic_write_json(args.out, res)
    if args.record:
        from ..checkpoint import record_metrics

        keep = {k: res[k] for k in ("psnr_at", "psnr_mean", "ssim_mean", "swap", "n_episodes", "settings") if k in res}
        keep["action_following"] = {k: {kk: v for kk, v in r.items() if kk != "per_step"}
                                    for k, r in (res.get("action_following") or {}).items()}
        record_metrics(args.checkpoint, "eval", keep, format_report(res), args.command_line)
    print(json.dumps(res) if args.json else format_report(res))


def _parse_ks(text: str, flag: str = "--ks") -> tuple[int, ...]:
    ks = _csv(text, flag, int)
    if min(ks) < 2 or len(set(ks)) != len(ks):
        raise UsageError(f"{flag} {text!r}: need distinct integers >= 2")
    return ks


def _parse_memories(text: str | None, sink: int = 0) -> tuple[str, ...] | None:
    from ..memory import MEMORIES

    if not text:
        return None
    names = _csv(text, "--memories", str)
    bad = [n for n in names if n not in MEMORIES]
    if bad:
        raise UsageError(f"--memories {text!r}: unknown {', '.join(bad)}; known: {', '.join(MEMORIES)}")
    if sink and any(n not in ("window", "sink") for n in names):
        raise UsageError(f"--memories {text!r} with --sink {sink}: sink frames are the 'sink' memory; drop --sink")
    return names


def _suite_options(args: argparse.Namespace, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per-suite keyword arguments from the options, for the selected suites only; checked."""
    for opt, v in (("--causality-episodes", args.causality_episodes), ("--causality-steps", args.causality_steps),
                   ("--probes", args.probes), ("--speed-frames", args.speed_frames), ("--episodes", args.episodes),
                   ("--horizon", args.horizon), ("--context", args.context), ("--batch", args.batch)):
        if v < 1:
            raise UsageError(f"{opt} {v}: must be >= 1")
    every = {
        "causality": {"episodes": args.causality_episodes, "steps": args.causality_steps},
        "persistence": {"ks": _parse_ks(args.ks), "probes": args.probes, "memories": _parse_memories(args.memories, args.sink or 0)},
        "speed": {"frames": args.speed_frames},
        "revisits": {"gaps": _parse_ks(args.gaps, "--gaps"), "episodes": args.episodes, "context": args.context,
                     "batch": args.batch, "memories": _parse_memories(args.memories, args.sink or 0)},
        "rollout": {"context": args.context, "horizon": args.horizon, "episodes": args.episodes, "batch": args.batch,
                    "start": args.start,
                    "swap": args.swap},
    }
    return {n: every[n] for n in names if n in every}


def _eval_suites(args: argparse.Namespace) -> None:
    from ..config import atomic_write_json
    from ..eval.report import format_summary, headline, results_json, run_settings, write_report
    from ..eval.suite import clean
    from ..eval.suites import DEFAULT_SUITES, SuiteError, parse_suites, run_suites

    setup_cpu(args.threads)
    try:
        names = parse_suites(args.suite if args.suite is not None else ",".join(DEFAULT_SUITES))
    except ValueError as e:
        raise UsageError(str(e)) from None
    data = _existing_dir(args.data, "--data") if args.data is not None else None
    options = _suite_options(args, names)
    model = _load_model(args.checkpoint, args)
    overrides = _sim_overrides(args, model)

    def done(name: str, res: Any, err: str | None) -> None:
        print(f"eval: {name} " + (f"FAILED: {err}" if err else f"done in {res.seconds:.1f} s"), file=sys.stderr, flush=True)

    try:
        results, errors = run_suites(model, names, options=options, sim_overrides=overrides, data=data,
                                     physics_checkpoint=args.physics_checkpoint, progress=_progress(),
                                     keep_going=True, on_done=done)
    except SuiteError as e:  # found before anything ran: a missing suite, the wrong checkpoint, a bad option
        raise UsageError(str(e)) from None
    settings = run_settings(args.checkpoint, names, command=args.command_line, sim_overrides=overrides,
                            physics_checkpoint=_physics_used(args, model) if "physics" in names else None,
                            data=str(data) if data is not None else None, options=options,
                            seconds=round(sum(r.seconds for r in results), 1))
    out = results_json(results, settings, errors)
    if args.report:
        page = write_report(args.report, results, settings, errors, fps=float(model.config.get("fps", 15)))
        print(f"eval: report {page}", file=sys.stderr)
    if args.out:
        atomic_write_json(args.out, out)
    if args.record and results:
        from ..checkpoint import record_metrics

        record_metrics(args.checkpoint, "suites", clean({r.name: headline(r) for r in results}),
                       format_summary(results, errors), args.command_line)
    print(json.dumps(out) if args.json else format_summary(results, errors))
    if errors:
        for name, err in errors.items():
            print(f"worldloom eval: error: suite {name!r} failed: {err}", file=sys.stderr)
        raise SystemExit(1)


def _physics_used(args: argparse.Namespace, model: Any) -> str:
    """The physics suite's checkpoint as run_suites chooses it (recorded with the results)."""
    from ..eval.suites import physics_source

    src = physics_source(model, args.physics_checkpoint)
    return args.checkpoint if src is model else str(src)


def _build_eval(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("examples:\n  worldloom eval --checkpoint arena --data runs/arena/data-val --episodes 60 --horizon 32\n"
                "  worldloom eval --checkpoint arena --suite all --out runs/eval-arena   (HTML report + results.json)")
    p.add_argument("--checkpoint", required=True, help="world-model checkpoint directory or bundled name (e.g. arena)")
    p.add_argument("--suite", default=None,
                   help="comma-separated suites: physics, causality, persistence, fidelity, speed (or all), "
                        "rollout (held-out rollouts of --data) and revisits (returns to earlier views in --data) "
                        "(default: all five; with --data and no --suite, the "
                        "held-out rollout eval and its markdown report as before, or the rollout suite with --report)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write DIR/index.html (tables, plots, videos) and DIR/results.json")
    p.add_argument("--physics-checkpoint", default=None,
                   help="phys2d checkpoint(s) for the physics suite; '{scene}' in it names one model per scene "
                        "(default: --checkpoint if it is a phys2d one, else the bundled per-scene phys2d-{scene})")
    p.add_argument("--data", default=None, help="held-out dataset (the rollout eval / rollout and revisits suites)")
    p.add_argument("--causality-episodes", type=int, default=16, help="causality: arena contexts (default: 16)")
    p.add_argument("--causality-steps", type=int, default=8, help="causality: steps each action is held (default: 8)")
    p.add_argument("--ks", default="16,64,256",
                   help="persistence: frames spent away (and as many coming back) (default: 16,64,256: revisits "
                        "32, 128 and 512 frames later)")
    p.add_argument("--memories", default=None,
                   help="persistence, revisits: context policies compared side by side on this model, e.g. "
                        "window,place,similar (default: the one --memory or the checkpoint names)")
    p.add_argument("--gaps", default="32,64",
                   help="revisits: least frames between a view's last sighting and the return (default: 32,64)")
    p.add_argument("--probes", type=int, default=3, help="persistence: round trips per k (default: 3)")
    p.add_argument("--speed-frames", type=int, default=300, help="speed: frames streamed by the bench (default: 300)")
    p.add_argument("--episodes", type=int, default=50, help="rollout, revisits: episodes to evaluate (default: 50)")
    p.add_argument("--horizon", type=int, default=32, help="rollout: frames generated per episode (default: 32)")
    p.add_argument("--context", type=int, default=4, help="rollout, revisits: context frames from each episode (default: 4)")
    p.add_argument("--batch", type=int, default=10, help="rollout, revisits: episodes rolled out together (default: 10)")
    p.add_argument("--start", type=int, default=0,
                   help="rollout: first context frame of each episode (0 = the reset, agent at rest; default: 0)")
    p.add_argument("--swap", default="auto", choices=("auto", "rotate", "roll"),
                   help="rollout: wrong actions of the action-swap check: rotate directions a quarter turn, roll "
                        "actions across episodes, or auto (rotate when the action names allow) (default: auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the human summary")
    p.add_argument("--out", default=None, help="also write the result as JSON to this file")
    p.add_argument("--record", action="store_true",
                   help="store the summary in the checkpoint's config.json and model card (README.md)")
    _add_sim_args(p)
    p.set_defaults(func=cmd_eval)
