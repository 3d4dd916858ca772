"""worldloom: interactive video world models.

Public API (resolved lazily, so ``import worldloom`` does not import torch)::

    import worldloom
    model = worldloom.load("arena")               # a bundled name, a checkpoint directory or "org/name" (Hub)
    sim = worldloom.Simulator(model, steps=2)     # SimConfig fields as overrides
    sim.reset(context_frames, context_actions)
    frame = sim.step(action)
    model.save_pretrained("my-world")             # a checkpoint directory load() reads back bit for bit
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worldloom.runtime.loading import load, save_pretrained
    from worldloom.runtime.simulator import SimConfig, Simulator, WorldModel

# name -> module that defines it; imported on first attribute access.
_LAZY = {
    "load": "worldloom.runtime.loading",
    "save_pretrained": "worldloom.runtime.loading",
    "Simulator": "worldloom.runtime.simulator",
    "SimConfig": "worldloom.runtime.simulator",
    "WorldModel": "worldloom.runtime.simulator",
}

__all__ = ["load", "save_pretrained", "Simulator", "SimConfig", "WorldModel", "__version__"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("worldloom")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        v = _version()
        globals()["__version__"] = v
        return v
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'worldloom' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
