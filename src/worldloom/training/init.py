"""Starting from trained checkpoints: the frozen tokenizer a dynamics run encodes with, and ``--init``.

``init_from`` loads a world model's DiT weights into a new run's DiT of the same config. A few config
fields may differ when the new run only *adds* to the init (``GROWABLE``, ``GROWABLE_PRED``, more
stacked past frames): the added module, head rows or input columns start as no change, so the grown
model predicts exactly what the init did and training goes on from there (tests/test_cli.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..actions import ActionSpec
from ..checkpoint import load_strict, read_checkpoint, split_prefix
from ..config import to_dict
from ..models.dit import CausalDiT, DynamicsConfig
from ..models.vae import VAE, VAEConfig


def load_tokenizer(path: str | Path) -> tuple[VAE, dict[str, Any]]:
    """The (frozen) VAE of a tokenizer or world-model checkpoint, and that checkpoint's config."""
    from ..checkpoint import CheckpointError
    from ..config import from_dict

    d, config, tensors = read_checkpoint(path, kinds=("tokenizer", "worldmodel"))
    if "vae" not in config:
        raise CheckpointError(f"{d / 'config.json'}: has no 'vae' config, so it holds no tokenizer")
    vae = VAE(from_dict(VAEConfig, config["vae"], where=str(d / "config.json")))
    load_strict(vae, split_prefix(tensors, "vae."), where=str(d / "model.safetensors"))
    return vae.eval(), config


# Config fields an --init checkpoint may lack (0 there): each adds a module that starts as the identity
# (its name prefix), so a trained model can grow it and begin exactly where it was (a memory copy gate: exactly
# without memory frames, and with them 0.25 % of the placed frame; models.mem_copy).
GROWABLE = {"head_conv": "refine.", "mem_copy": "mem_copy."}
# Head changes an --init may grow, (its pred, this run's): the flow rows a 'warp' head adds after the
# latent's come in at zero (no flow), so the grown model predicts what the 'delta' init did.
GROWABLE_PRED = {("delta", "warp")}
# Fields that change how the head uses its outputs, not which weights it has: a fine-tune may set them anew.
HEAD_USE = ("flow_snap",)


def _grows(k: str, theirs: dict[str, Any], mine: dict[str, Any]) -> bool:
    if k == "pred":
        return (theirs.get(k), mine.get(k)) in GROWABLE_PRED
    if k == "prev_frames":  # more stacked frames: their input columns come in at zero (the init ignores them)
        return bool(mine.get("prev_frame")) and int(theirs.get(k) or 1) < int(mine[k])
    return k in GROWABLE and not theirs.get(k)


def _grow_rows_or_columns(weights: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor], names: tuple[str, ...], dim: int) -> None:
    """Zero-padded copies of ``names`` at their fresh shapes: the init's rows (dim 0) or columns (dim 1) come first."""
    for n in names:
        if n in weights:
            w = torch.zeros_like(fresh[n])
            w.narrow(dim, 0, weights[n].shape[dim]).copy_(weights[n].to(w.dtype))
            weights[n] = w


def init_from(dit: CausalDiT, path: str | Path, actions: ActionSpec | None = None, actions_from: str = "the data") -> dict[str, Any]:
    """Load a world model's DiT weights into ``dit`` (same config, strict; the same action names as ``actions``
    if given, which came from ``actions_from``); returns what the new card records."""
    from ..checkpoint import CheckpointError

    d, config, tensors = read_checkpoint(path, kinds=("worldmodel",))
    where = str(d / "config.json")
    if "dynamics" not in config:
        raise CheckpointError(f"{where}: init needs a world model's 'dynamics' config, and this one has none")
    from ..config import from_dict

    # Fields added since that checkpoint was written take their defaults, as loading it for play does.
    mine, theirs = to_dict(dit.cfg), to_dict(from_dict(DynamicsConfig, config["dynamics"], where=f"{where}: dynamics"))
    diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    grown = [k for k in diff if _grows(k, theirs, mine)]  # a module or head rows the init lacks, added here
    changed = [k for k in diff if k in HEAD_USE]
    diff = [k for k in diff if k not in grown and k not in changed]
    if diff:
        raise CheckpointError(f"{where}: dynamics config differs from this run's in {', '.join(diff)} "
                              f"({', '.join(f'{k}: {theirs.get(k)!r} vs {mine.get(k)!r}' for k in diff)})")
    weights = split_prefix(tensors, "dit.")
    fresh = dit.state_dict()
    for k in grown:  # the new part keeps its own start (no correction, no flow): the model begins as the init
        if k == "pred":  # head rows are (C latent + 2 flow) x p x p, channel-major: the init's rows come first
            _grow_rows_or_columns(weights, fresh, ("out.weight", "out.bias"), 0)
        elif k == "prev_frames":  # x_in's columns: the patch, then the stack newest first, channel-major
            _grow_rows_or_columns(weights, fresh, ("x_in.weight",), 1)
        else:
            weights.update({n: v for n, v in fresh.items() if n.startswith(GROWABLE[k])})
    load_strict(dit, weights, where=str(d / "model.safetensors") + " (dit)")
    if actions is not None and "action_spec" in config:
        ActionSpec.from_dict(config["action_spec"], where=f"{where}: action_spec").require_same(
            actions, mine=f"--init {where}", theirs=actions_from)
    out = {"path": str(path), "trained_steps": config.get("trained_steps"), "data": (config.get("data") or {}).get("path"),
           "recipe_cmd": config.get("recipe_cmd"), **({"grown": {k: mine[k] for k in grown}} if grown else {}),
           **({"changed": {k: [theirs.get(k), mine[k]] for k in changed}} if changed else {})}
    if "distill" in config:  # a student: its own fine-tune on top of its teacher's trained_steps
        out["distill_steps"] = config["distill"].get("trained_steps")
    if config.get("speed"):  # serving defaults (precision, compile): a fine-tune keeps the model's
        out["speed"] = config["speed"]
    return out
