"""Helpers shared by the command modules: user errors, torch set-up, paths, option plumbing."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PRESETS = ("cpu", "tiny")
VIDEO_SCALE = 4  # nearest-neighbour upscale of written videos
EXIT_USAGE = 2


class UsageError(Exception):
    """Something the user can fix (a path, a name, an option); printed as one line, exit 2."""


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
    from ..data.format import Dataset

    return Dataset.open(_existing_dir(path, option))


def _fields_given(cls: type, args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The fields of ``cls`` that were set on the command line (with ``prefix``)."""
    out = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        v = getattr(args, (prefix + f.name).replace("-", "_"), None)
        if v is not None:
            out[f.name] = tuple(v) if isinstance(v, list) else v
    return out


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
