"""Loading and saving world models: ``load(dir | bundled name | "org/name")`` and ``save_pretrained``.

Key choices:

- **One loader.** A checkpoint is checked whole before anything is allocated: config fields by
  type and range (:func:`~worldloom.config.from_dict`), the action spec against the DiT, the sim
  settings (:meth:`SimConfig.problems`), and every tensor's name, shape and dtype on the meta device
  (an absurd ``dim`` is refused here, not by the allocator). Every error names the file at fault.
- **Speed policy here, not in the Simulator.** ``config.json: speed`` is the checkpoint's measured
  fastest setting; :func:`load` applies it (bf16 only where the machine runs it natively) through
  :func:`~worldloom.runtime.speed.accelerate`. This module imports both the simulator and the speed
  module, so neither imports the other's loader.
- **save_pretrained round-trips bit for bit.** It writes the full-precision weights a sped-up model
  was made from (``WorldModel.base``), the config the model was loaded with (the sim settings as it
  runs them now) and the card with fresh front-matter; ``dtype="float16"`` or ``"bfloat16"`` halves
  the file (loaded back as fp32), exact for a model that was loaded from such a file.
- **Hub ids** (``"org/name"``) resolve through ``huggingface_hub`` (the ``hub`` extra) in
  :func:`worldloom.checkpoint.resolve`, honouring ``HF_HUB_OFFLINE`` and the local cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..actions import ActionSpec
from ..checkpoint import CARD, CONFIG, CheckpointError, check_tensors, load_strict, read_checkpoint, save_checkpoint, \
    split_prefix
from ..config import from_dict, to_dict
from ..models.dit import CausalDiT, DynamicsConfig
from ..models.temporal_decoder import TemporalDecoder, TemporalDecoderConfig
from ..models.vae import VAE, VAEConfig
from .simulator import SimConfig, WorldModel

SAVE_DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}

LEGACY_TD_MASK_HALF = 9  # the view-shift mask every temporal decoder used before the field was recorded


def load(name_or_path: str | Path, device: str | torch.device = "cpu", precision: str | None = None,
         compile: bool | None = None) -> WorldModel:
    """Load a world-model checkpoint from a directory, a bundled name (e.g. ``"arena"``) or a Hugging
    Face Hub id (``"org/name"``, with the ``hub`` extra).

    ``device``: cpu, cuda[:N], mps or ``auto`` (:func:`~worldloom.hardware.pick_device`).
    ``precision`` (fp32 | bf16 | int8) and ``compile`` apply :func:`~worldloom.runtime.speed.accelerate`;
    None takes the checkpoint's ``config.json: speed`` (its measured fastest setting), else fp32 eager.
    A checkpoint default of bf16 falls back to fp32 on a device without native bf16; a default of int8
    (a CPU kernel) to bf16 or fp32 on any other device.
    """
    from ..hardware import pick_device

    device = pick_device(device) if isinstance(device, str) else device
    d, config, tensors = read_checkpoint(name_or_path, kinds=("worldmodel",))
    where = str(d / CONFIG)
    weights = str(d / "model.safetensors")
    try:
        vae_cfg = from_dict(VAEConfig, config["vae"], where=where + ":vae")
        dyn_cfg = from_dict(DynamicsConfig, config["dynamics"], where=where + ":dynamics")
        spec = ActionSpec.from_dict(config["action_spec"], where=where + ":action_spec")
        sim = from_dict(SimConfig, config.get("sim", {}), where=where + ":sim")
        td_cfg = None
        if config.get("temporal_decoder") is not None:
            # A decoder saved before motion_mask_half was recorded masked the 9 px box, whatever its env.
            td_dict = {"motion_mask_half": LEGACY_TD_MASK_HALF, **config["temporal_decoder"]}
            td_cfg = from_dict(TemporalDecoderConfig, td_dict, where=where + ":temporal_decoder").with_env_prior(config.get("env"))
        if spec.n != dyn_cfg.n_actions:
            raise ValueError(f"{where}: action_spec names {spec.n} actions {list(spec.names)}, but dynamics.n_actions is "
                             f"{dyn_cfg.n_actions}")
        for fields, why in sim.problems(dyn_cfg.max_frames)[:1]:
            raise ValueError(f"{where}: sim " + ", ".join(f"{f}={getattr(sim, f)!r}" for f in fields) + f": {why}")
        with torch.device("meta"):  # shapes first, allocating nothing: an absurd config is refused here
            check_tensors(VAE(vae_cfg).state_dict(), split_prefix(tensors, "vae."), where=weights + " (vae)")
            check_tensors(CausalDiT(dyn_cfg).state_dict(), split_prefix(tensors, "dit."), where=weights + " (dit)")
        vae, dit = VAE(vae_cfg), CausalDiT(dyn_cfg)
        tdec = TemporalDecoder(td_cfg) if td_cfg is not None else None
    except CheckpointError:
        raise
    except KeyError as e:
        raise CheckpointError(f"{where}: missing field {e}") from None
    except (ValueError, TypeError) as e:  # a config field out of range: say which file holds it
        raise CheckpointError(str(e) if where in str(e) else f"{where}: {e}") from None
    load_strict(vae, split_prefix(tensors, "vae."), where=weights + " (vae)")
    load_strict(dit, split_prefix(tensors, "dit."), where=weights + " (dit)")
    if tdec is not None:
        load_strict(tdec, split_prefix(tensors, "tdec."), where=weights + " (temporal decoder)")
        tdec = tdec.to(device).eval()
    elif any(k.startswith("tdec.") for k in tensors):
        raise CheckpointError(f"{weights}: holds temporal-decoder weights but {where} has no 'temporal_decoder' config")
    model = WorldModel(vae.to(device).eval(), dit.to(device).eval(), config, spec, d, sim, tdec)
    return _apply_speed(model, config, where, precision, compile)


def default_precision(speed: dict[str, Any], device: torch.device) -> str:
    """The checkpoint's ``speed`` precision as it runs on ``device``: int8 (a CPU kernel) becomes bf16 off
    the CPU, and bf16 becomes fp32 where the device has no native bf16."""
    from ..hardware import bf16_supported

    precision = str(speed.get("precision", "fp32"))
    if precision == "int8" and device.type != "cpu":  # measured on a CPU; a GPU runs bf16 natively
        precision = "bf16"
    if precision == "bf16" and not bf16_supported(device):
        precision = "fp32"
    return precision


def _apply_speed(model: WorldModel, config: dict, where: str, precision: str | None, compile: bool | None) -> WorldModel:
    from ..hardware import bf16_supported
    from .speed import PRECISIONS, accelerate

    speed = dict(config.get("speed") or {})
    device = next(model.dit.parameters()).device
    if precision is None:
        precision = default_precision(speed, device)
    if precision not in PRECISIONS:
        raise CheckpointError(f"{where}: speed precision {precision!r} is not one of {PRECISIONS}")
    compile = bool(speed.get("compile", False)) if compile is None else compile
    vae_precision = speed.get("vae_precision") if precision == speed.get("precision", "fp32") else None
    if vae_precision == "bf16" and not bf16_supported(device):
        vae_precision = "fp32"
    if precision != "fp32" or compile or vae_precision == "bf16":
        model = accelerate(model, precision, compile, vae_precision=vae_precision)
    return model


def save_pretrained(model: WorldModel, out: str | Path, dtype: str = "float32") -> Path:
    """Write ``model`` to the checkpoint directory ``out`` (config.json, model.safetensors, README.md).

    A sped-up model saves the full-precision weights it was made from, and keeps its checkpoint's
    ``speed`` default; the sim settings saved are the ones the model runs with. ``dtype``:
    ``float32`` (default, exact), ``float16`` or ``bfloat16`` (half the file; loaded back as fp32).
    """
    if dtype not in SAVE_DTYPES:
        raise ValueError(f"save_pretrained: dtype must be one of {sorted(SAVE_DTYPES)}, got {dtype!r}")
    src = model.base or model
    out = Path(out)
    if model.path is not None and out.resolve() == Path(model.path).resolve():
        raise ValueError(f"save_pretrained: {out} is the directory the model was loaded from; save to a new one")
    config = {k: v for k, v in src.config.items() if k != "speed_applied"}
    config.update(kind="worldmodel", vae=to_dict(src.vae.cfg), dynamics=to_dict(src.dit.cfg), sim=to_dict(src.sim),
                  action_spec=src.action_spec.to_dict())
    if src.tdec is not None:
        config["temporal_decoder"] = to_dict(src.tdec.cfg)
    modules = {"vae": src.vae, "dit": src.dit, **({"tdec": src.tdec} if src.tdec is not None else {})}
    old = Path(src.path) / CARD if src.path is not None else None
    card = old.read_text() if old is not None and old.exists() else "# World model\n\nSaved with `save_pretrained`.\n"
    path = save_checkpoint(out, config, modules, card, dtype=SAVE_DTYPES[dtype])
    if src.path is not None:  # its play context and training curves travel with it
        from ..checkpoint import carry_train_logs
        from .context import copy_context

        copy_context(src.path, path)
        carry_train_logs(path, (src.path,))
    return path


__all__ = ["load", "save_pretrained"]
