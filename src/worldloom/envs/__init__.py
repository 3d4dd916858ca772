"""Environments: the registry that turns an env id into a ``gymnasium.Env``.

Ids: ``"arena"`` (the hero world, :mod:`worldloom.envs.arena`) and ``"phys2d"`` (PhyWorld's physics
scenes, :mod:`worldloom.envs.phys2d`). Env modules are imported only when made, so importing this
package costs gymnasium and nothing else (no pymunk, no Box2D, no torch).
They are also registered with Gymnasium as ``worldloom/Arena-v0`` and ``worldloom/Phys2D-v0``.
"""

from __future__ import annotations

from typing import Any

import gymnasium

ARENA_GYM_ID = "worldloom/Arena-v0"
PHYS2D_GYM_ID = "worldloom/Phys2D-v0"
KNOWN_IDS = ("arena", "phys2d")

if ARENA_GYM_ID not in gymnasium.registry:  # entry point is a string: imported lazily by gymnasium.make
    gymnasium.register(id=ARENA_GYM_ID, entry_point="worldloom.envs.arena:ArenaEnv", max_episode_steps=None)
if PHYS2D_GYM_ID not in gymnasium.registry:
    gymnasium.register(id=PHYS2D_GYM_ID, entry_point="worldloom.envs.phys2d:Phys2DEnv", max_episode_steps=None)


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """Build an env by id; ``kwargs`` are config fields (``render_mode`` is passed to the env)."""
    if env_id == "arena":
        from worldloom.envs.arena import ArenaConfig, ArenaEnv

        render_mode = kwargs.pop("render_mode", "rgb_array")
        return ArenaEnv(ArenaConfig(**kwargs), render_mode=render_mode)
    if env_id == "phys2d":
        from worldloom.envs.phys2d import Phys2DConfig, Phys2DEnv

        render_mode = kwargs.pop("render_mode", "rgb_array")
        return Phys2DEnv(Phys2DConfig(**kwargs), render_mode=render_mode)
    # "gym:<id>" (any Gymnasium env) is wired here to worldloom.envs.gym.make_gym_env (a teammate's part).
    raise ValueError(f"unknown env id {env_id!r}; known: {list(KNOWN_IDS)}")


__all__ = ["ARENA_GYM_ID", "KNOWN_IDS", "PHYS2D_GYM_ID", "make"]
