"""Training state on disk: the manifest that commits a state, the files it names, and the log's trim.

Key choices:
- One commit point: the tensors (one safetensors file, or a DCP directory of shards) go to a name
  holding their step, then the manifest ``train_state.json`` (step, name, sha256, format) replaces the
  old one in one rename, and only then are older states deleted. A run killed anywhere resumes from the
  last committed step.
- ``read_committed`` refuses a manifest whose state is missing, differs from its hash or holds another
  step, with a message that says what to do.
- A resumed run trims ``log.jsonl`` to its step: the steps a killed session logged are trained again.
  A fresh run in a dir an earlier run left starts with none of its log or states (``start_afresh``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from . import parallel
from ..checkpoint import CheckpointError, load_weights, weights_from_bytes
from ..config import atomic_write_bytes, read_json

META = "train_state.json"  # the manifest: written last, it commits a state
LEGACY_STATE = "train_state.safetensors"  # tensors of states saved before the manifest named them


def state_file(step: int) -> str:
    return f"train_state-{step:08d}.safetensors"


def dcp_dir(step: int) -> str:
    return f"train_state-{step:08d}.dcp"


def log_step(line: str) -> int | None:
    """The step of one log.jsonl line: -1 if it has none (kept), None if it does not parse (a torn write)."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return None
    return rec["step"] if isinstance(rec, dict) and isinstance(rec.get("step"), int) else -1


def trim_log(log_path: Path, step: int) -> None:
    """Drop log lines past the resumed step: the steps a killed session logged are trained again."""
    if not log_path.exists():
        return
    lines = log_path.read_text().splitlines()
    keep = [ln for ln in lines if (st := log_step(ln)) is not None and st <= step]
    if len(keep) != len(lines):
        atomic_write_bytes(log_path, "".join(ln + "\n" for ln in keep).encode())


def clean(run_dir: Path, keep: str) -> None:
    """Delete tensor files the manifest does not name and temp files a killed write left behind."""
    for p in run_dir.glob("train_state-*.safetensors"):
        if p.name != keep:
            p.unlink(missing_ok=True)
    for p in run_dir.glob("train_state-*.dcp"):
        if p.name != keep:
            shutil.rmtree(p, ignore_errors=True)
    if keep != LEGACY_STATE:
        (run_dir / LEGACY_STATE).unlink(missing_ok=True)
    for p in run_dir.glob(".train_state*.tmp"):
        p.unlink(missing_ok=True)

def start_afresh(run_dir: Path, log_path: Path) -> None:
    """A run started without --resume in a dir an earlier run left: its manifest, states and log go first,
    so a later --resume never picks up the earlier run's state, and the log holds this run's steps alone."""
    meta = run_dir / META
    if not (meta.exists() or log_path.exists() or any(run_dir.glob("train_state-*"))):
        return
    step = read_json(meta).get("step") if meta.exists() else None
    print(f"{run_dir}: a fresh run replaces the earlier one here" + (f" (saved at step {step})" if step is not None else "")
          + "; --resume continues a run instead", file=sys.stderr)
    meta.unlink(missing_ok=True)  # first: with no manifest, nothing below is a committed state
    clean(run_dir, keep="")
    log_path.unlink(missing_ok=True)


def read_committed(run_dir: Path) -> tuple[dict[str, Any], Path, dict[str, torch.Tensor] | None] | None:
    """The committed state (manifest, tensor file or DCP directory, tensors: None for DCP), its parts
    checked against each other; None if there is none."""
    meta_path = run_dir / META
    if not meta_path.exists():
        return None
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int) or not isinstance(meta.get("param_groups"), list):
        raise CheckpointError(f"{meta_path}: not a training-state manifest (needs integer 'step' and 'param_groups')")
    if "weights" not in meta:  # saved before manifests named their tensors: nothing to check them against
        print(f"warning: {meta_path} is an old-style state without a hash; resuming at step {meta['step']} "
              "unchecked", file=sys.stderr)
        return meta, run_dir / LEGACY_STATE, load_weights(run_dir / LEGACY_STATE)
    path = run_dir / str(meta["weights"])
    if path.parent != run_dir or not path.exists():
        raise CheckpointError(f"{meta_path}: names training state {meta['weights']!r}, which is not in {run_dir}; "
                              "the state is torn: delete the run dir or train without --resume")
    if meta.get("format") == "dcp":
        digest = parallel.dcp_digest(path)
        if digest != meta.get("sha256"):
            raise CheckpointError(f"{path}: its DCP metadata ({'missing' if digest is None else digest[:12] + '...'}) differs "
                                  f"from {meta_path}'s {str(meta.get('sha256'))[:12]}...: the state is torn or corrupt; "
                                  "delete the run dir or train without --resume")
        return meta, path, None
    blob = path.read_bytes()  # one read: hashed, then parsed
    digest = hashlib.sha256(blob).hexdigest()
    if digest != meta.get("sha256"):
        raise CheckpointError(f"{path}: sha256 {digest[:12]}... differs from {meta_path}'s "
                              f"{str(meta.get('sha256'))[:12]}...: the state is torn or corrupt; delete the run "
                              "dir or train without --resume")
    tensors, file_meta = weights_from_bytes(blob, where=str(path))
    if file_meta.get("step") != str(meta["step"]):
        raise CheckpointError(f"{path}: holds step {file_meta.get('step')}, but {meta_path} says "
                              f"{meta['step']}: the state is torn; delete the run dir or train without --resume")
    return meta, path, tensors


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as flat tensors ``{i}.{name}`` (a safetensors file holds no dicts)."""
    return {f"{i}.{name}": v if torch.is_tensor(v) else torch.tensor(v)
            for i, st in opt.state_dict()["state"].items() for name, v in st.items()}


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           param_groups: list[dict[str, Any]] | None = None, device: torch.device | None = None) -> None:
    """Load what :func:`optimizer_tensors` saved into ``opt``; ``param_groups``: saved group settings (lr, ...)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        i, name = k.split(".", 1)
        state.setdefault(int(i), {})[name] = v if device is None else v.to(device)
    sd = opt.state_dict()
    for g, saved in zip(sd["param_groups"], param_groups or []):
        g.update({k: v for k, v in saved.items() if k != "params"})
    sd["state"] = state
    opt.load_state_dict(sd)
