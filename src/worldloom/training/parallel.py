"""How the training loop spreads one model over ``torchrun``'s processes, and sharded training state.

Two modes, both PyTorch's own engine, chosen by ``TrainConfig.parallel``:
- ``ddp``: every process holds the whole model, EMA and optimizer; gradients are all-reduced
  (``DistributedDataParallel``). Training state is today's single safetensors file, written by rank 0.
- ``fsdp``: FSDP2 (``fully_shard``): each transformer block, then the rest, is sharded over the
  processes, so weights, gradients, optimizer moments and the EMA each cost 1/N per process. Training
  state goes through ``torch.distributed.checkpoint`` (DCP): every process writes its shards to one
  directory, which DCP can load back on any number of processes, one included (it reshards).

Key choices:
- The EMA is sharded like the model (both are ``fully_shard``-ed the same way, so their parameters
  pair up shard for shard and the EMA update stays local); the export to a single-file checkpoint
  gathers it once, at the end (``full_module``), into an unsharded copy kept from before sharding.
- The units sharded separately are the items of the model's ``nn.ModuleList``s (the DiT's blocks):
  one all-gather per block in the forward pass, the granularity FSDP's docs recommend.
- A DCP state commits like a safetensors one: the manifest, written last by rank 0, names the
  directory and the hash of DCP's ``.metadata`` file, which DCP writes after every shard.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

MODES = ("ddp", "fsdp")
DCP_META = ".metadata"  # the file DCP writes last, after every process's shards


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The submodules FSDP shards one by one: every item of every ``nn.ModuleList`` (the blocks)."""
    return [m for mod in model.modules() if isinstance(mod, nn.ModuleList) for m in mod]


def device_mesh(device: torch.device, world: int) -> Any:
    """The 1-D mesh of all ``world`` processes that the model and its EMA are sharded over."""
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device.type, (world,))


def fully_shard_model(model: nn.Module, mesh: Any) -> None:
    """Shard ``model`` in place over ``mesh`` with FSDP2: each unit, then the root."""
    from torch.distributed.fsdp import fully_shard

    for unit in shard_units(model):
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def set_gradient_sync(model: nn.Module, on: bool) -> None:
    """FSDP2's counterpart of DDP's ``no_sync``: skip the reduce-scatter on accumulation micro-batches."""
    model.set_requires_gradient_sync(on)  # type: ignore[operator]


def local_float(x: torch.Tensor) -> float:
    """A scalar that may be a replicated DTensor (FSDP2's gradient norm) as a Python float."""
    from torch.distributed.tensor import DTensor

    return float(x.full_tensor() if isinstance(x, DTensor) else x)


def mean_over_ranks(x: torch.Tensor, world: int) -> torch.Tensor:
    """The mean of a scalar over all processes (what the log reports as the step's loss)."""
    if world == 1:
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / world


def unsharded_copy(model: nn.Module) -> nn.Module:
    """A plain copy of ``model`` taken before sharding: the vessel ``full_module`` fills at export."""
    return copy.deepcopy(model).requires_grad_(False).eval()


def full_module(sharded: nn.Module, vessel: nn.Module | None) -> nn.Module | None:
    """Gather a sharded module's whole state into ``vessel`` where one is given (rank 0) and return it.

    Every rank must call it (it all-gathers); ranks without a vessel get None."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(sharded, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if vessel is not None:
        vessel.load_state_dict(full)
    return vessel


def _state(model: nn.Module, ema: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    return {"model": get_model_state_dict(model), "ema": get_model_state_dict(ema),
            "optim": get_optimizer_state_dict(model, opt)}


def dcp_save(path: Path, model: nn.Module, ema: nn.Module, opt: torch.optim.Optimizer) -> None:
    """Write the training state to directory ``path`` (every rank calls it; rank 0 writes the metadata last)."""
    import torch.distributed.checkpoint as dcp

    dcp.save(_state(model, ema, opt), checkpoint_id=str(path))


def dcp_digest(path: Path) -> str | None:
    """The hash of a DCP directory's metadata (what the manifest records), None if it has none."""
    meta = path / DCP_META
    return hashlib.sha256(meta.read_bytes()).hexdigest() if meta.is_file() else None


def dcp_load(path: Path, model: nn.Module, ema: nn.Module, opt: torch.optim.Optimizer) -> None:
    """Load a DCP training state saved on any number of processes into this run's (sharded or plain) model."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    state = _state(model, ema, opt)  # the layout of this run: DCP reads the saved shards into it
    with warnings.catch_warnings():  # one process without a process group is a case DCP supports, not a fault
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(path))
    set_model_state_dict(model, state["model"])
    set_model_state_dict(ema, state["ema"])
    set_optimizer_state_dict(model, opt, state["optim"])
