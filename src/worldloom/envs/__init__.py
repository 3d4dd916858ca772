"""Environments: an env id becomes a ``gymnasium.Env`` through its one registration (:mod:`.registry`).

Ids: ``"arena"`` (the hero world, :mod:`worldloom.envs.arena`), ``"phys2d"`` (PhyWorld's physics
scenes, :mod:`worldloom.envs.phys2d`) and ``"gym:<Gymnasium id>"`` (:mod:`worldloom.envs.gym`). Env modules are imported only when made, so importing this
package costs gymnasium and nothing else (no pymunk, no Box2D, no torch).
They are also registered with Gymnasium as ``worldloom/Arena-v0`` and ``worldloom/Phys2D-v0``.
"""

from __future__ import annotations

from typing import Any

import gymnasium

ARENA_GYM_ID = "worldloom/Arena-v0"
PHYS2D_GYM_ID = "worldloom/Phys2D-v0"
KNOWN_IDS = ("arena", "phys2d")  # the built-in worlds; registry.known() lists every registered id

if ARENA_GYM_ID not in gymnasium.registry:  # entry point is a string: imported lazily by gymnasium.make
    gymnasium.register(id=ARENA_GYM_ID, entry_point="worldloom.envs.arena:ArenaEnv", max_episode_steps=None)
if PHYS2D_GYM_ID not in gymnasium.registry:
    gymnasium.register(id=PHYS2D_GYM_ID, entry_point="worldloom.envs.phys2d:Phys2DEnv", max_episode_steps=None)


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """Build an env by id; ``kwargs`` are config fields (``render_mode`` is passed to the env)."""
    from .registry import entry

    e = entry(env_id)
    return e.build(env_id, int(kwargs.get("view", kwargs.get("frame_size", 64))), kwargs)


__all__ = ["ARENA_GYM_ID", "KNOWN_IDS", "PHYS2D_GYM_ID", "make"]
