"""A camera that follows the agent over a grid world's top-down map (the ``gym:`` adapter's ``follow``).

A grid world such as MiniGrid can be watched from the agent's eyes (``agent_pov``: the view turns with
the agent, so one key press replaces the whole frame) or whole (nothing ever leaves the view, so nothing
needs remembering). ``follow: N`` is the third way, the one the arena and most top-down games use: a square
of ``N`` x ``N`` tiles of the whole map, centred on the agent and kept in the world's axes. Walking scrolls
the view by one tile, turning only turns the agent's marker, and a place that leaves the view comes back
when the agent walks back: revisits a memory can serve and a window cannot. Seen this way (8 tiles across), the
four rooms are the world where a pose-free memory first beat a window-only control (docs/BENCHMARKS.md, "Memory",
twenty-eighth session); seen from the agent's eyes, none had.

Key choices:
- The map is drawn at ``ceil(frame_size / N)`` px per tile, so that ``N`` tiles fill the frame without
  resampling where ``frame_size`` divides (64 px, 8 tiles: 8 px a tile); otherwise the crop is fitted
  down with the wrapper's resize.
- The agent sits on tile ``N // 2`` of each axis; tiles beyond the map are black, as MiniGrid draws
  unseen cells.
- The env's own field-of-view shading (``highlight``) is left out: it turns with the agent, and would
  change the map's colours wherever the agent looks.
- Supported where the unwrapped env states the agent's tile (``agent_pos``) and draws its whole map at a
  chosen tile size (``get_frame(highlight, tile_size, agent_pov)``): the MiniGrid and BabyAI families.
  Anything else is refused by name when the env is built, not on the first frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_follow(unwrapped: Any, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if its env cannot be followed (no agent tile or map drawing)."""
    if not hasattr(unwrapped, "agent_pos") or not callable(getattr(unwrapped, "get_frame", None)):
        raise ValueError(f"gym:{name}: adapter option 'follow' needs an env that states its agent's tile (agent_pos) and "
                         "draws its whole map (get_frame), as MiniGrid and BabyAI envs do; this one does neither")


def follow_frame(unwrapped: Any, tiles: int, tile: int) -> np.ndarray:
    """The ``tiles`` x ``tiles`` squares of the map around the agent, ``tile`` px each: uint8 (tiles * tile, tiles * tile, 3)."""
    full = np.asarray(unwrapped.get_frame(highlight=False, tile_size=tile, agent_pov=False))  # (H*t, W*t, 3)
    ax, ay = (int(v) for v in unwrapped.agent_pos)
    side = tiles * tile
    x0, y0 = (ax - tiles // 2) * tile, (ay - tiles // 2) * tile  # the view's top-left corner on the map, px
    out = np.zeros((side, side, 3), np.uint8)
    H, W = full.shape[:2]
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + side, H), min(x0 + side, W)
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0] = full[sy0:sy1, sx0:sx1]
    return out


def tile_px(frame_size: int, tiles: int) -> int:
    """Px per map tile so that ``tiles`` tiles cover at least ``frame_size`` px."""
    return -(-int(frame_size) // int(tiles))
