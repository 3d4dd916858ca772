"""Checkpoints as directories: ``config.json`` + ``model.safetensors`` + ``README.md`` (model card).

Key choices:
- Weights only in safetensors, loaded strictly: a missing or unexpected key is an error listing the
  keys. Nothing a user hands us is ever unpickled.
- ``config.json`` holds every config field needed to rebuild the model, plus the ActionSpec, the
  data and the recipe, so a checkpoint is self-describing.
- Bundled checkpoints are package data, ``worldloom/checkpoints/<name>/`` (the repository's
  ``checkpoints`` is a link to it), so an installed wheel finds them by name as a checkout does; an
  ``org/name`` that is neither a directory nor a bundled name is a Hugging Face Hub id, fetched (or,
  with ``HF_HUB_OFFLINE=1``, only looked up in the local cache) by ``huggingface_hub`` (the ``hub`` extra).
- Every card written starts with YAML front-matter (``library_name: worldloom``, tags, datasets,
  metrics), as the Hub reads it; the text below it is the card's own.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .config import atomic_write_bytes, atomic_write_json, read_json

CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
TRAIN_LOG = "train_log-{stage}.jsonl"  # a stage's log.jsonl, kept in the checkpoint (the eval report plots it)
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""A Hugging Face Hub model id, ``org/name``."""


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message names the file at fault."""


def bundled_dir() -> Path:
    """Where bundled checkpoints live (``$WORLDLOOM_CHECKPOINTS`` overrides)."""
    env = os.environ.get("WORLDLOOM_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parent / "checkpoints"


def bundled_names() -> list[str]:
    root = bundled_dir()
    return sorted(p.name for p in root.iterdir() if (p / CONFIG).exists()) if root.is_dir() else []


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A checkpoint directory from a path, a bundled name or a Hub id; a clear error if none exists."""
    p = Path(name_or_path)
    if (p / CONFIG).exists():
        return p
    if not p.is_absolute() and len(p.parts) == 1 and (bundled_dir() / p / CONFIG).exists():
        return bundled_dir() / p
    if p.exists():
        raise CheckpointError(f"{p}: not a checkpoint directory (no {CONFIG})")
    if isinstance(name_or_path, str) and REPO_ID.match(name_or_path):
        return hub_snapshot(name_or_path)
    raise CheckpointError(f"checkpoint {str(name_or_path)!r} not found: not a directory with {CONFIG}, "
                          f"and not a bundled name (bundled: {bundled_names()})")


def hub_snapshot(repo_id: str) -> Path:
    """The local directory of the Hub model ``repo_id`` (its config, weights and card only), from the
    local cache or, unless ``HF_HUB_OFFLINE`` is set, downloaded into it."""
    where = f"checkpoint {repo_id!r} (not a local directory or a bundled name, so a Hugging Face Hub id)"
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(f"{where}: loading from the Hub needs huggingface_hub: pip install 'worldloom[hub]'") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        files = [CONFIG, WEIGHTS, CARD, "context_*.npy", TRAIN_LOG.format(stage="*")]  # play context and curves too
        d = Path(snapshot_download(repo_id, allow_patterns=files, local_files_only=offline,
                                   cache_dir=os.environ.get("HF_HUB_CACHE") or None))
    except Exception as e:  # not cached while offline, no such repo, no network: one line, what to do
        why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        hint = ("it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: fetch it once with "
                f"`huggingface-cli download {repo_id}`, or pass a checkpoint directory") if offline else \
            "check the id, your network, or pass a checkpoint directory"
        raise CheckpointError(f"{where}: {hint} ({type(e).__name__}: {why})") from None
    if not (d / CONFIG).exists():
        raise CheckpointError(f"{where}: the Hub snapshot {d} has no {CONFIG}; it is not a worldloom checkpoint")
    return d


def save_weights(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Write ``tensors`` as safetensors, atomically; returns the file's sha256 (hex)."""
    import hashlib

    from safetensors.torch import save

    data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    blob = save(data, metadata=metadata)
    atomic_write_bytes(path, blob)
    return hashlib.sha256(blob).hexdigest()


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def weights_from_bytes(blob: bytes, *, where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file already read into memory (``where`` names it in errors)."""
    import struct

    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(blob)
        (n,) = struct.unpack("<Q", blob[:8])  # the format: u64 header length, then the JSON header
        return tensors, json.loads(blob[8 : 8 + n]).get("__metadata__") or {}
    except (SafetensorError, ValueError, struct.error) as e:
        raise CheckpointError(f"{where}: not a readable safetensors file ({e})") from None


def check_tensors(own: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], *, where: str) -> None:
    """Raise if ``tensors`` do not fit a module whose state dict is ``own`` (keys, shapes, dtype kinds), listing each.

    ``own`` may be a state dict on the meta device, so an absurd config is refused before it allocates.
    Floating tensors may be stored at another float precision (they are cast); an integer or bool tensor
    where the module has floats (or the reverse) would load as garbage, so it is refused.
    """
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    common = set(own) & set(tensors)
    bad_shape = sorted(k for k in common if own[k].shape != tensors[k].shape)
    bad_dtype = sorted(k for k in common if own[k].dtype.is_floating_point != tensors[k].dtype.is_floating_point
                       or (not own[k].dtype.is_floating_point and own[k].dtype != tensors[k].dtype))
    parts = []
    if missing:
        parts.append(f"missing keys {missing}")
    if unexpected:
        parts.append(f"unexpected keys {unexpected}")
    if bad_shape:
        parts.append("shape mismatch " + ", ".join(f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}" for k in bad_shape))
    if bad_dtype:
        parts.append("dtype mismatch " + ", ".join(f"{k}: file {tensors[k].dtype} vs model {own[k].dtype}" for k in bad_dtype[:8]))
    if parts:
        raise CheckpointError(f"{where}: " + "; ".join(parts))


def load_strict(module: nn.Module, tensors: dict[str, torch.Tensor], *, where: str) -> None:
    """Load ``tensors`` into ``module``; a mismatch (:func:`check_tensors`) or a non-finite weight is an error naming them."""
    own = module.state_dict()
    check_tensors(own, tensors, where=where)
    bad_value = [k for k in sorted(tensors) if tensors[k].dtype.is_floating_point and not bool(torch.isfinite(tensors[k]).all())]
    if bad_value:
        raise CheckpointError(f"{where}: non-finite values (NaN or inf) in {', '.join(bad_value[:8])}"
                              + (f" and {len(bad_value) - 8} more" if len(bad_value) > 8 else ""))
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()}, strict=True)


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def front_matter(config: dict[str, Any]) -> str:
    """The card's YAML front-matter for a checkpoint with ``config`` (the Hub's model-card metadata)."""
    env = str(config.get("env") or "")
    tags = ["world-model", "video-generation", "action-conditioned"]
    tags += ["diffusion-forcing"] if config.get("kind") == "worldmodel" else [str(config.get("kind", "model"))]
    tags += [env.replace(":", "-").replace("/", "-")] if env else []
    data = (config.get("data") or {}).get("path") if isinstance(config.get("data"), dict) else None
    metrics = sorted(set(config.get("metrics") or {}))
    lines = ["---", "library_name: worldloom", "tags:"] + [f"- {json.dumps(t)}" for t in tags]
    if data:
        lines += ["datasets:", f"- {json.dumps(Path(str(data)).name)}"]
    if metrics:
        lines += ["metrics:"] + [f"- {json.dumps(m)}" for m in metrics]
    return "\n".join(lines + ["---", ""])


def strip_front_matter(card: str) -> str:
    """``card`` without its leading YAML front-matter block, if it has one."""
    if card.startswith("---\n"):
        end = card.find("\n---\n", 4)
        if end >= 0:
            return card[end + 5:].lstrip("\n")
    return card


def save_checkpoint(out: str | os.PathLike, config: dict[str, Any], modules: dict[str, nn.Module],
                    card: str, dtype: torch.dtype | None = None) -> Path:
    """Write a checkpoint dir; ``modules`` maps a key prefix (e.g. "vae") to a module.

    ``dtype`` (e.g. torch.float16) stores floating weights smaller; they are loaded back as fp32.
    The card gets fresh front-matter (:func:`front_matter`) above its text.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for prefix, m in modules.items():
        for k, v in m.state_dict().items():
            tensors[f"{prefix}.{k}"] = v.to(dtype) if (dtype is not None and v.is_floating_point()) else v
    save_weights(out / WEIGHTS, tensors, metadata={"format": "worldloom"})
    atomic_write_json(out / CONFIG, config)
    atomic_write_bytes(out / CARD, (front_matter(config) + "\n" + strip_front_matter(card)).encode())
    return out


def train_logs(path: str | os.PathLike) -> dict[str, Path]:
    """The training logs a checkpoint directory carries, by stage (``tokenizer``, ``dynamics``, ...)."""
    pre, post = TRAIN_LOG.split("{stage}")
    return {f.name[len(pre):-len(post)]: f for f in sorted(Path(path).glob(TRAIN_LOG.format(stage="*")))}


def carry_train_logs(out: str | os.PathLike, sources: tuple[str | os.PathLike | None, ...] = (),
                     stage: tuple[str, str | os.PathLike] | None = None) -> None:
    """Keep in checkpoint ``out`` the logs of the checkpoints it was built from (``sources``: tokenizer,
    init, teacher) and, given ``stage`` = (name, log.jsonl), this stage's own; a stage keeps its first log."""
    out = Path(out)
    logs = {stage[0]: Path(stage[1])} if stage is not None and Path(stage[1]).is_file() else {}
    for src in sources:
        if src is not None and Path(src).is_dir():
            for name, f in train_logs(src).items():
                logs.setdefault(name, f)
    for name, f in logs.items():
        if f.resolve() != (out / TRAIN_LOG.format(stage=name)).resolve():
            atomic_write_bytes(out / TRAIN_LOG.format(stage=name), f.read_bytes())


def read_config(path: str | os.PathLike, kinds: tuple[str, ...] = ()) -> tuple[Path, dict[str, Any]]:
    """The directory and ``config.json`` of a checkpoint (a path, bundled name or Hub id), read alone:
    an object with a ``kind``, one of ``kinds`` if given; otherwise a :class:`CheckpointError` naming the file."""
    d = resolve(path)
    try:
        config = read_json(d / CONFIG)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(config, dict) or "kind" not in config:
        raise CheckpointError(f"{d / CONFIG}: expected an object with a 'kind' field")
    if kinds and config["kind"] not in kinds:
        raise CheckpointError(f"{d / CONFIG}: kind is {config['kind']!r}, expected a "
                              f"{' or '.join(map(repr, kinds))} checkpoint")
    return d, config


def read_checkpoint(path: str | os.PathLike, kinds: tuple[str, ...] = ()) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """:func:`read_config` and the checkpoint's weights: the one reader every loader goes through."""
    d, config = read_config(path, kinds)
    return d, config, load_weights(d / WEIGHTS)


METRICS_HEADING = "## Measured"


def drop_sections(card: str, head: str) -> str:
    """``card`` without every section whose heading line starts with ``head`` (e.g. ``"## Recipe\n"``),
    each up to the next "## " heading."""
    start = 0
    while (start := card.find(head, start)) >= 0:
        if start and card[start - 1] != "\n":  # not a heading: mentioned inside a line
            start += 1
            continue
        nxt = card.find("\n## ", start + len(head))
        card = card[:start] + (card[nxt + 1:] if nxt >= 0 else "")
    return card


def drop_metrics_sections(card: str, name: str | None = None) -> str:
    """``card`` without its "Measured" section for ``name`` (every one if None), each up to the next "## " heading."""
    return drop_sections(card, f"{METRICS_HEADING}: {name}\n" if name is not None else f"{METRICS_HEADING}: ")


def record_metrics(path: str | os.PathLike, name: str, metrics: dict[str, Any], report_md: str, command: str) -> Path:
    """Store ``metrics`` under ``config["metrics"][name]`` and put ``report_md`` into the card.

    The card keeps one "Measured" section per ``name``, replaced on every call, so re-running an
    eval updates the numbers instead of piling them up.
    """
    d = resolve(path)
    config = read_json(d / CONFIG)
    config.setdefault("metrics", {})[name] = metrics
    atomic_write_json(d / CONFIG, config)
    card = (d / CARD).read_text() if (d / CARD).exists() else ""
    head = f"{METRICS_HEADING}: {name}\n"
    body = drop_metrics_sections(strip_front_matter(card), name).rstrip()
    card = front_matter(config) + "\n" + body + f"\n\n{head}\n`{command}`\n\n{report_md.strip()}\n"
    atomic_write_bytes(d / CARD, card.encode())
    return d
