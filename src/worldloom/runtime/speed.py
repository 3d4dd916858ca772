"""Inference speed-ups, each one switchable: bf16 weights, int8 linear layers, torch.compile.

``accelerate(model, precision="bf16", compile=True)`` returns a new :class:`WorldModel` whose DiT and
VAE run faster; the Simulator, play, eval and bench use it unchanged (the sampler's arithmetic and
the latents between steps stay fp32; the DiT casts its inputs to its weights' dtype and returns fp32).

Key choices (measured numbers in docs/BENCHMARKS.md):
- **bf16 weights, not autocast.** Converting the weights once avoids a cast per matmul per step;
  on CPUs with AVX-512-BF16/AMX, oneDNN runs bf16 matmuls and convs natively. The KV cache is bf16
  too, which halves its memory. The VAE follows the DiT (``vae_precision`` can keep it fp32).
- **int8**: dynamic per-tensor int8 quantisation of every ``nn.Linear`` in the DiT with the
  ``torch.ao`` path (deprecated, but shipped with torch and dependency-free); activations stay fp32
  and the VAE stays fp32. Kept only where the bench shows it beats bf16 on the whole loop.
- **channels-last decoder** (``channels_last``, on by default with any speed-up): the VAE decoder's
  weights and activations in NHWC memory order, which oneDNN convolves without layout reorders.
- **compile**: ``torch.compile`` of each block's MLP (conv included) and of the VAE decoder. Not of
  whole blocks: their cache writes at a moving ring slot recompiled on every frame and hit dynamo's
  limit (measured), and the KV-cache bookkeeping of ``step`` is Python by design.
- The original model is never modified: play can serve several variants from one loaded checkpoint.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn as nn

from .simulator import WorldModel

PRECISIONS = ("fp32", "bf16", "int8")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _quantize_int8(module: nn.Module) -> nn.Module:
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # the torch.ao path is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)


def _compile(model: WorldModel) -> None:
    import torch._dynamo

    # A few graphs per module (batch sizes, training vs inference mode); leave headroom.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)
    for blk in model.dit.blocks:  # the FFN: pure tensor code with static shapes (the attention half writes the cache)
        blk.ffn = torch.compile(blk.ffn, dynamic=False)
    model.vae.decoder.compile(dynamic=False)


def accelerate(model: WorldModel, precision: str = "fp32", compile: bool = False,
               vae_precision: str | None = None, channels_last: bool = True) -> WorldModel:
    """A copy of ``model`` with the given speed-ups applied (see the module docstring).

    Args:
        precision: ``fp32``, ``bf16`` (weights and activations) or ``int8`` (dynamic int8 Linears).
        compile: ``torch.compile`` the transformer blocks and the VAE decoder.
        vae_precision: ``fp32`` or ``bf16`` for the VAE; default: bf16 with ``precision="bf16"``, else fp32.
        channels_last: run the VAE decoder in NHWC memory order (same numbers up to float rounding).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    vae_precision = vae_precision or ("bf16" if precision == "bf16" else "fp32")
    if vae_precision not in _DTYPES:
        raise ValueError(f"vae_precision must be fp32 or bf16, got {vae_precision!r}")
    dit, vae = copy.deepcopy(model.dit).eval(), copy.deepcopy(model.vae).eval()
    if precision == "int8":
        if next(dit.parameters()).device.type != "cpu":
            raise ValueError("precision int8 (torch.ao dynamic quantisation) runs on CPU only")
        dit = _quantize_int8(dit)
    else:
        dit = dit.to(_DTYPES[precision])
        dit.rope.float()  # rotation tables stay fp32: bf16 angles would blur positions
    vae = vae.to(_DTYPES[vae_precision])
    if channels_last:
        vae.decoder.to(memory_format=torch.channels_last)
        vae.channels_last = True
    applied = {"precision": precision, "vae_precision": vae_precision, "compile": compile, "channels_last": channels_last}
    out = replace(model, dit=dit, vae=vae, config=dict(model.config, speed_applied=applied), base=model.base or model)
    if compile:
        _compile(out)
    return out


def describe(model: WorldModel) -> dict[str, object]:
    """The speed settings a model runs with (``config["speed"]`` is the checkpoint's default, this is what ran)."""
    return dict(model.config.get("speed_applied") or {"precision": "fp32", "vae_precision": "fp32", "compile": False,
                                                      "channels_last": False})
