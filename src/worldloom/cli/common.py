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

EXIT_USAGE = 2
HELP_ALL = "--help-all"
FULL_HELP = False  # set by main(): `--help-all` shows every config field, `--help` the common ones
# The config fields `--help` shows, per option prefix (the rest: --help-all).
COMMON_FIELDS = {"train-": ("steps", "batch_size", "lr", "threads"), "recipe-": ("student_steps",)}


class UsageError(Exception):
    """Something the user can fix (a path, a name, an option); printed as one line, exit 2."""


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


def brief_help(p: argparse.ArgumentParser, groups: list[tuple[type, str]], example: str) -> None:
    """Unless ``--help-all`` was given, hide the ``--prefix-*`` config options of ``groups`` that
    :data:`COMMON_FIELDS` does not list, and say in the epilog how many there are and how to see them."""
    if FULL_HELP:
        return
    hidden = 0
    for cls, prefix in groups:
        keep = COMMON_FIELDS.get(prefix, ())
        dests = {(prefix + f.name).replace("-", "_") for f in dataclasses.fields(cls) if f.name not in keep}  # type: ignore[arg-type]
        for action in p._actions:
            if action.dest in dests and action.help != argparse.SUPPRESS:
                action.help, hidden = argparse.SUPPRESS, hidden + 1
    more = f"{hidden} more options set model, recipe and schedule fields: `{example} --help-all` lists them."
    p.epilog = (p.epilog + "\n\n" + more) if p.epilog else more


def _preset_defaults(p: argparse.ArgumentParser, cls: type, prefix: str, presets: dict[str, Any],
                     fixed: dict[str, str] | None = None) -> None:
    """Rewrite the ``(default: X)`` of ``--prefix-*`` options to the presets' values (what is used)."""
    fixed = fixed or {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        dest = (prefix + f.name).replace("-", "_")
        for action in p._actions:
            if action.dest == dest and action.help and action.help != argparse.SUPPRESS:
                text = action.help.rsplit(" (default: ", 1)[0]
                if f.name in fixed:
                    action.help = f"{text} (default: {fixed[f.name]})"
                else:
                    vals = ", ".join(f"{name} {getattr(cfg, f.name)}" for name, cfg in presets.items())
                    action.help = f"{text} (preset {vals})"


# --- config files: --config FILE and --print-config ---------------------------------------------
CONFIG_HELP = ("JSON or YAML file of config sections to start from instead of the preset (a `--print-config` output, or "
               "a checkpoint directory or its config.json); options given on the command line still win")


def config_options(p: argparse.ArgumentParser) -> None:
    """``--config FILE`` and ``--print-config``, the same on every training command."""
    p.add_argument("--config", default=None, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved configs as JSON (what --config reads back) and exit without training")


def config_file_bases(path: str | None, sections: dict[str, tuple[type, Any]], root: str | None = None,
                      kinds: dict[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """Each section's base config: from ``path`` where the file has that section, else the given default.

    ``sections`` maps a section name (``"train"``) to (config class, default). ``path`` is a JSON file
    or a checkpoint directory (its config.json); ``root`` names the key a checkpoint nests some of this
    command's sections under (a student keeps its distillation configs under ``"distill"``); in a
    checkpoint those are read from there only. ``kinds`` maps a checkpoint ``kind`` to the sections
    this command may take from it (a world model's ``train`` is its DiT's, not a tokenizer's). A file
    with none of the sections, a section of unknown fields or a value of the wrong type is an error
    naming the file and the field.
    """
    from ..config import from_dict, read_json, to_dict

    out = {name: default for name, (_, default) in sections.items()}
    if path is None:
        return out
    f = Path(path)
    f = f / "config.json" if f.is_dir() else f
    try:
        data = _read_yaml(f) if f.suffix.lower() in (".yaml", ".yml") else read_json(f)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"--config: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {f}: expected a JSON object of config sections, got {type(data).__name__}")
    kind = data.get("kind")
    if root is not None and kind is not None:  # a checkpoint: this command's sections live under root only
        nested = data.get(root) if isinstance(data.get(root), dict) else {}
        data = {**{k: v for k, v in data.items() if k not in nested and k not in ("recipe", "train")}, **nested}
    elif root is not None and isinstance(data.get(root), dict):
        data = {**data, **data[root]}
    allowed = (kinds or {}).get(kind, tuple(sections)) if isinstance(kind, str) else tuple(sections)
    found = [name for name in sections if name in allowed and isinstance(data.get(name), dict)]
    if not found:
        what = f" from a {kind!r} checkpoint" if isinstance(kind, str) else ""
        raise UsageError(f"--config {f}: has none of the sections {list(allowed if kind else sections)} this command reads{what}")
    for name in found:
        cls, default = sections[name]
        try:  # fields the file leaves out keep the default's values
            out[name] = from_dict(cls, {**to_dict(default), **data[name]}, where=f"--config {f}: {name}")
        except ValueError as e:
            raise UsageError(str(e)) from None
    return out


def _read_yaml(f: Path) -> Any:
    """A YAML config file; a missing or malformed file is an error that names it."""
    import yaml

    try:
        return yaml.safe_load(f.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{f}: file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{f}: not valid YAML ({str(e).splitlines()[0]})") from None


def print_config(configs: dict[str, Any]) -> None:
    """The resolved configs as one JSON object of sections (``--print-config``)."""
    import json

    from ..config import to_dict

    print(json.dumps({name: to_dict(c) for name, c in configs.items()}, indent=2))


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """--device / --precision / --compile: where and how the model runs (worldloom.runtime.speed)."""
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, cuda:N, mps or auto (default: auto, a GPU where there is one, else the CPU)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default=None,
                        help="weights/activations: fp32, bf16, or int8 linear layers (default: the checkpoint's "
                             "'speed' setting, else fp32)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the transformer blocks and the decoder (default: the checkpoint's)")


def speed_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``load()`` options given on the command line (absent = the checkpoint's default; device: auto)."""
    return {k: getattr(args, k) for k in ("device", "precision", "compile") if getattr(args, k, None) is not None}
