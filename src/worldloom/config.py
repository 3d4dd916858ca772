"""Shared config helpers: dataclass <-> JSON, and dataclass -> argparse.

Every component keeps its config as a dataclass next to its class. Each field has a default and a
one-line doc in ``field(metadata={"doc": ...})``; the CLI turns those docs into ``--help`` text and
checkpoints save the resolved dataclass as JSON, so a saved config is exactly what rebuilds a model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def doc(default: Any, text: str, choices: tuple[Any, ...] | None = None, **kw: Any) -> Any:
    """A dataclass field with a default and a one-line doc (shown by ``--help``); ``choices`` fixes the
    values it may take (checked by the CLI and by :func:`from_dict`)."""
    meta = {"doc": text, **({"choices": tuple(choices)} if choices else {})}
    if choices and default not in choices:
        raise ValueError(f"doc: default {default!r} is not one of its choices {choices}")
    if isinstance(default, (list, dict, tuple)) and not isinstance(default, tuple):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build ``cls`` from a dict; unknown keys and values of the wrong JSON type are errors naming them and ``where``."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object of {cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    names = set(fields)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown {cls.__name__} field(s) {unknown}; known: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in data.items():
        if not _fits(hints[k], v):
            raise ValueError(f"{where}: field {k!r} must be {_type_name(hints[k])}, got {json.dumps(v)[:60]}")
        choices = fields[k].metadata.get("choices")
        if choices and v not in choices:
            raise ValueError(f"{where}: field {k!r} must be one of {list(choices)}, got {json.dumps(v)[:60]}")
        if typing.get_origin(hints[k]) is tuple and isinstance(v, list):
            v = tuple(v)
        elif hints[k] is float and isinstance(v, int):
            v = float(v)
        kwargs[k] = v
    return cls(**kwargs)


def _fits(hint: Any, v: Any) -> bool:
    """Whether a JSON value ``v`` is of the type ``hint`` (a float must be finite; types not listed pass)."""
    origin = typing.get_origin(hint)
    if hint is bool:
        return isinstance(v, bool)
    if hint is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if hint is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if hint is str:
        return isinstance(v, str)
    if hint is type(None):
        return v is None
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(v, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(args[0], x) for x in v)
        return len(v) == len(args) and all(_fits(a, x) for a, x in zip(args, v))
    if origin in (typing.Union, types.UnionType):
        return any(_fits(a, v) for a in typing.get_args(hint))
    return True


def _type_name(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    if hint in names:
        return names[hint]
    return str(hint).replace("typing.", "")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are shareable artefacts
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON; a missing or malformed file is an error that names the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to read") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add one ``--prefix-field`` option per dataclass field, help text from the field doc."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        name = "--" + (prefix + f.name).replace("_", "-")
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_ = f"{f.metadata.get('doc', '')} (default: {default})"
        dest = (prefix + f.name).replace("-", "_")
        if tp is bool:
            group.add_argument(name, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif typing.get_origin(tp) is tuple:
            (elem, *_) = typing.get_args(tp)
            group.add_argument(name, dest=dest, type=elem, nargs="+", default=None, help=help_)
        else:
            base = typing.get_args(tp)[0] if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType")) else tp
            group.add_argument(name, dest=dest, type=base, default=None, help=help_,
                               choices=f.metadata.get("choices"))


def dataclass_from_args(cls: type[T], args: argparse.Namespace, base: T | None = None, prefix: str = "") -> T:
    """``base`` (or the defaults) with every option the user gave on the command line applied."""
    cfg = base if base is not None else cls()
    changes = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        v = getattr(args, (prefix + f.name).replace("-", "_"), None)
        if v is not None:
            changes[f.name] = tuple(v) if isinstance(v, list) else v
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]
