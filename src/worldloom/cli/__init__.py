"""``worldloom`` command line: collect, import-videos, import-lerobot, export-lerobot, encode, train, distill, plot, generate, bench, eval, play, doctor.

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
- Every entry point that touches torch calls :func:`worldloom.hardware.setup_cpu` first (flush
  denormals: a CPU run here slowed 10-20x without it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from . import common
from .common import EXIT_USAGE, HELP_ALL, UsageError, _command_line
from .data import _build_collect, _build_doctor, _build_encode, _build_export_lerobot, _build_import_lerobot, _build_import_videos
from .evaluate import _build_eval
from .play import _build_play
from .run import _build_bench, _build_generate
from .train import _build_distill, _build_plot, _build_train

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "collect": ("record episodes of an env into a dataset", _build_collect),
    "import-videos": ("import a folder of videos + action logs as a dataset", _build_import_videos),
    "import-lerobot": ("import a local LeRobot v3 dataset (one camera, its actions) as a dataset", _build_import_lerobot),
    "export-lerobot": ("write a dataset as a LeRobot v3 dataset (parquet + mp4)", _build_export_lerobot),
    "encode": ("encode a dataset once into a memory-mapped latent cache that training reads from disk", _build_encode),
    "train": ("train the tokenizer or the dynamics model", _build_train),
    "distill": ("fine-tune a world model into a 1-2 step student on its own rollouts", _build_distill),
    "plot": ("draw a training run's loss, throughput, learning-rate and gradient curves to a PNG", _build_plot),
    "generate": ("roll out a world model from a held-out episode's context and write a video", _build_generate),
    "bench": ("rollout bench: FPS, per-frame latency, memory and flatness of one streaming Simulator", _build_bench),
    "eval": ("score rollouts against held-out episodes", _build_eval),
    "play": ("serve the world in the browser: arrow keys / WASD, live stats, truth side by side", _build_play),
    "doctor": ("print versions, threads, bf16 support and bundled checkpoints", _build_doctor),
}


def build_parser(argv: Sequence[str] | None = None, *, full: bool = False) -> argparse.ArgumentParser:
    """The parser; builds only the options of the command named in ``argv`` unless ``full``."""
    p = argparse.ArgumentParser(prog="worldloom", allow_abbrev=False,
                                description="worldloom: interactive video world models. Run `worldloom COMMAND --help`.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.epilog = "`worldloom COMMAND --help` shows a command's common options; `--help-all` every one."
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    for name, (help_, build) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".", allow_abbrev=False)
        if full or name == selected:
            build(sp)
    return p


def _is_alloc_error(e: RuntimeError) -> bool:
    """torch's allocator failures (an absurd model size), which deserve one line, not a traceback."""
    return any(m in str(e) for m in ("can't allocate memory", "out of memory", "not enough memory"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    common.FULL_HELP = HELP_ALL in argv
    if common.FULL_HELP:  # the same help, with every config field
        argv = ["--help" if a == HELP_ALL else a for a in argv]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.version:
        from .. import __version__

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
    except (ValueError, OSError, FloatingPointError, MemoryError, RuntimeError) as e:
        # CheckpointError, DatasetError, config mismatches, missing files, a diverged loss, a model too big to
        # allocate; any other RuntimeError is a bug of ours and keeps its traceback
        if os.environ.get("WORLDLOOM_DEBUG") or (type(e) is RuntimeError and not _is_alloc_error(e)):
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
