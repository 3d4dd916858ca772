"""Ground truth for Atari games from the emulator's RAM: objects in the view, as the eval scores them.

A generic Gymnasium env has no agreed state, so ``gym:`` envs report none (``worldloom.envs.gym``). An
Atari game's objects do have one: their positions sit at fixed RAM addresses. For the games listed in
:data:`GAMES`, :func:`read_state` turns the RAM into the object convention of ``eval/objects.py``
(``<kind>_pos_view`` in view px, ``<kind>_radius``, ``<kind>_color``), so that ``worldloom eval``
scores the ball's permanence and the paddle's motion of a ``gym:ALE/Pong-v5`` model with no code of
its own, exactly as it scores the arena's balls.

Key choices:

- **Addresses and offsets are measured, not guessed.** Pong's addresses (ball x 49, ball y 54, player
  paddle y 51, opponent paddle y 50) are the ones the Atari annotated-RAM literature uses; the offset
  from each RAM value to the object's drawn centre in the 210x160 frame was fitted on 1,500 random-policy
  steps by finding each object's colour in the frame: ball x = RAM - 48.5 (std 0.003 px), ball
  y = RAM - 12.7 (std 0.4), player y = RAM - 6.0 (std 0.5), opponent y = RAM - 7.5 (std 0.02). The
  paddles' x is fixed (141.5, 17.5). ``tests/envs/test_atari_state.py`` checks them against the frames.
- **An object not drawn is out of view.** Between points Pong hides the ball; its position is then put
  outside the view, so the eval scores it in no frame (it scores only objects fully in view).
- **Positions follow the frame's fit.** :func:`fit_geometry` is the same scale and offset that
  ``resize_frame`` applies (pad, crop or stretch), so a position in the source frame lands where the
  fitted frame draws it; the radius is half the object's larger side, scaled.
- The player's paddle is the kind ``agent`` (the one the keys move), as in the arena.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

OFF_VIEW = -1e4  # px: where an object that is not drawn is put (never in view)


@dataclass(frozen=True)
class RamObject:
    """One object of a game: where its centre is in the source frame, read from RAM, and how it looks."""

    kind: str
    """The kind the eval reports (``ball``, ``agent``, ``opponent``)."""
    x: int | float
    """RAM address of its x (an int), or its fixed x in source px (a float)."""
    y: int | float
    """RAM address of its y (an int), or its fixed y in source px (a float)."""
    offset: tuple[float, float]
    """Source px added to the RAM values to get the drawn centre (x, y)."""
    size: tuple[float, float]
    """Width and height in source px."""
    color: tuple[int, int, int]
    """Its RGB colour in the frame."""
    shown: tuple[float, float, float, float] = (0.0, 0.0, 1e9, 1e9)
    """Source-px box (x0, y0, x1, y1) outside which the game does not draw it (hidden between points)."""


PONG_FIELD = (0.0, 34.0, 160.0, 194.0)  # the playing field: rows 34-193 of the 210x160 frame
GAMES: dict[str, tuple[RamObject, ...]] = {
    "Pong": (
        RamObject("ball", 49, 54, (-48.5, -12.7), (2.0, 4.0), (236, 236, 236), PONG_FIELD),
        RamObject("agent", 141.5, 51, (0.0, -6.0), (4.0, 16.0), (92, 186, 92)),
        RamObject("opponent", 17.5, 50, (0.0, -7.5), (4.0, 16.0), (213, 130, 74)),
    ),
}
"""Games whose objects :func:`read_state` reads, by the game's name in its id."""


def game_of(env_id: str) -> str | None:
    """The :data:`GAMES` entry an id names (``ALE/Pong-v5``, ``ale_py:ALE/Pong-v5``, ``PongNoFrameskip-v4``), else None."""
    base = env_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    m = re.match(r"([A-Za-z]+?)(?:NoFrameskip|Deterministic)?-v\d+$", base)
    return m.group(1) if m and m.group(1) in GAMES else None


def fit_geometry(h: int, w: int, size: int, fit: str) -> tuple[float, float, float, float]:
    """(sx, sy, ox, oy): a source pixel position (x, y) of an h x w frame lands at (x * sx + ox, y * sy + oy)
    in the ``size`` square that ``resize_frame(..., fit=fit)`` makes."""
    if fit == "crop" and h != w:
        s = min(h, w)
        k = size / s
        return k, k, -((w - s) // 2) * k, -((h - s) // 2) * k
    if fit == "pad" and h != w:
        nh, nw = (size, max(1, round(w * size / h))) if h > w else (max(1, round(h * size / w)), size)
        return nw / w, nh / h, float((size - nw) // 2), float((size - nh) // 2)
    return size / w, size / h, 0.0, 0.0


def read_state(game: str, ram: np.ndarray, geometry: tuple[float, float, float, float]) -> dict[str, Any]:
    """The objects of ``game`` in one frame, from its RAM (128 uint8), in the eval's state convention."""
    sx, sy, ox, oy = geometry
    ram = np.asarray(ram, np.int64)
    out: dict[str, Any] = {}
    for o in GAMES[game]:
        x = (float(ram[o.x]) if isinstance(o.x, int) else o.x) + o.offset[0]
        y = (float(ram[o.y]) if isinstance(o.y, int) else o.y) + o.offset[1]
        x0, y0, x1, y1 = o.shown
        drawn = x0 <= x - o.size[0] / 2 and x + o.size[0] / 2 <= x1 and y0 <= y - o.size[1] / 2 and y + o.size[1] / 2 <= y1
        out[f"{o.kind}_pos_view"] = np.array([x * sx + ox, y * sy + oy] if drawn else [OFF_VIEW, OFF_VIEW], np.float32)
        out[f"{o.kind}_radius"] = np.float32(max(o.size[0] * sx, o.size[1] * sy) / 2)
        out[f"{o.kind}_color"] = np.array(o.color, np.float32)
    return out


__all__ = ["GAMES", "OFF_VIEW", "RamObject", "fit_geometry", "game_of", "read_state"]
