"""ActionSpec: the named actions of a world, its continuous axes, and their default keys.

It travels with every dataset (``meta.json``) and checkpoint (``config.json``), so a player, an
evaluator and a trainer agree on what action index 3 means and what axis 1 measures.

An action is **composite**: one discrete id (``names``; index 0 is the no-op) plus a value for each
continuous :class:`Axis` (``axes``; none for a keyboard world). A Gymnasium ``Box`` env has the single
discrete action ``noop`` and one axis per dimension; keys plus a mouse delta would be both.

Key choices:
- **Ranges live in the spec.** Each axis states ``low``/``high`` (and a unit); :meth:`ActionSpec.normalize`
  maps values to [-1, 1] with them, in training and at run time alike, so the checkpoint that stores the
  spec stores its normalisation too and a user always passes raw values (radians, metres, N).
- **Keys drive axes in play** (:attr:`Axis.keys`): a held key sets its axis to the key's value, an
  axis with no key held rests at ``rest`` (0 clipped into the range). An axis may also follow the
  pointer (:attr:`Axis.mouse`): its movement within a frame, times a gain, is the axis's value for that
  frame (a mouse delta). docs/PROTOCOL.md has the mapping.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Axis:
    """One continuous control: a name, its range and unit, and the keys that drive it in play."""

    name: str
    low: float = -1.0
    high: float = 1.0
    unit: str = ""
    keys: tuple[tuple[str, float], ...] = ()
    """(DOM key name, axis value while held) pairs, e.g. (("ArrowLeft", -1.0), ("ArrowRight", 1.0))."""
    mouse: str = ""
    """The pointer movement that drives it in play: ``"x"`` (rightwards = up the range), ``"y"`` (downwards), ``""`` none."""
    mouse_gain: float = 0.0
    """Axis units per px the pointer moves within one frame (negative inverts); 0 = the range's span per 200 px."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"axis {self.name!r}: need finite low < high, got {self.low}, {self.high}")
        for k, v in self.keys:
            if not self.low <= v <= self.high:
                raise ValueError(f"axis {self.name!r}: key {k!r} sets {v}, outside [{self.low}, {self.high}]")
        if self.mouse not in ("", "x", "y") or not math.isfinite(self.mouse_gain):
            raise ValueError(f"axis {self.name!r}: mouse must be 'x', 'y' or '' with a finite gain, got "
                             f"{self.mouse!r}, {self.mouse_gain}")

    @property
    def gain(self) -> float:
        """Axis units per px of pointer movement within a frame (``mouse_gain``, or the span per 200 px)."""
        return self.mouse_gain or (self.high - self.low) / 200.0

    @property
    def rest(self) -> float:
        """The value with no key held: 0 if the range holds it, else the nearer end."""
        return min(max(0.0, self.low), self.high)

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "low": self.low, "high": self.high, "unit": self.unit, "keys": [[k, v] for k, v in self.keys]}
        return d | ({"mouse": self.mouse, "mouse_gain": self.mouse_gain} if self.mouse else {})

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "Axis":
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise ValueError(f"{where}: expected an object with a 'name', got {d!r}")
        try:
            keys = tuple((str(k), float(v)) for k, v in d.get("keys", []))
            return cls(d["name"], float(d.get("low", -1.0)), float(d.get("high", 1.0)), str(d.get("unit", "")), keys,
                       str(d.get("mouse", "")), float(d.get("mouse_gain", 0.0)))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None


@dataclass(frozen=True)
class ActionSpec:
    names: tuple[str, ...]
    """Action names, index = action id. Index 0 is the no-op by convention."""
    keys: tuple[tuple[str, ...], ...] = ()
    """Default keyboard keys (DOM ``KeyboardEvent.key`` names) per action; may be empty per action."""
    axes: tuple[Axis, ...] = field(default=())
    """Continuous axes, each with its range (empty: a purely discrete world)."""

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("ActionSpec needs at least one action")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"ActionSpec names must be unique: {self.names}")
        if self.keys and len(self.keys) != len(self.names):
            raise ValueError(f"ActionSpec has {len(self.names)} names but {len(self.keys)} key lists")
        if len({a.name for a in self.axes}) != len(self.axes):
            raise ValueError(f"ActionSpec axis names must be unique: {[a.name for a in self.axes]}")

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def n_axes(self) -> int:
        return len(self.axes)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown action {name!r}; known: {list(self.names)}") from None

    def require_same(self, other: "ActionSpec", *, mine: str, theirs: str) -> None:
        """Raise ``ValueError`` naming both sources unless ``other`` has the same actions and axes in the same order.

        A dataset whose actions are swapped against a model (up <-> down) would be scored or trained
        silently wrong, so a mismatch of count, names or order is an error; so is an axis of another
        name or range (the range is the model's normalisation). Keys may differ.
        """
        if tuple(self.names) != tuple(other.names):
            raise ValueError(f"action mismatch: {mine} has {self.n} actions {list(self.names)}, "
                             f"{theirs} has {other.n} {list(other.names)}")
        ours, yours = [(a.name, a.low, a.high) for a in self.axes], [(a.name, a.low, a.high) for a in other.axes]
        if ours != yours:
            raise ValueError(f"axis mismatch: {mine} has axes {ours} (name, low, high), {theirs} has {yours}")

    def check_axes(self, values: np.ndarray, where: str, slack: float = 1e-5) -> np.ndarray:
        """``values`` (..., n_axes) as float32 if every one is finite and inside its axis range (up to
        float32 rounding: ``slack`` relative to the range's magnitude); else a ``ValueError`` naming
        ``where``, the axis and the first bad index."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape[-1:] != (self.n_axes,):
            raise ValueError(f"{where}: expected {self.n_axes} axis values {[a.name for a in self.axes]} per step, "
                             f"got shape {v.shape}")
        for i, a in enumerate(self.axes):
            tol = slack * max(1.0, abs(a.low), abs(a.high))
            bad = np.flatnonzero(~np.isfinite(v[..., i]) | (v[..., i] < a.low - tol) | (v[..., i] > a.high + tol))
            if bad.size:
                at = np.unravel_index(int(bad[0]), v.shape[:-1])
                raise ValueError(f"{where}: axis {a.name!r} value {v[..., i].reshape(-1)[bad[0]]} at index "
                                 f"{tuple(int(x) for x in at)} is outside [{a.low}, {a.high}]")
        return v.astype(np.float32)

    def normalize(self, values: Any) -> Any:
        """Raw axis values (..., n_axes), numpy or torch, -> [-1, 1] by each axis's range (what the model sees)."""
        lo = np.array([a.low for a in self.axes], np.float32)
        hi = np.array([a.high for a in self.axes], np.float32)
        mid, half = (hi + lo) / 2, (hi - lo) / 2
        torch = sys.modules.get("torch")  # only a caller that already has torch can hand us a tensor
        if torch is not None and torch.is_tensor(values):
            return (values - torch.from_numpy(mid).to(values.device)) / torch.from_numpy(half).to(values.device)
        return (np.asarray(values, np.float32) - mid) / half

    def env_action(self, action: int, axes: Any = None) -> Any:
        """One step's action as an env of this spec takes it: the id (no axes), the axis values (a ``Box``
        env, whose only id is the no-op), or the pair (id, values) for a composite env; ``axes`` None =
        every axis at rest."""
        if not self.n_axes:
            return int(action)
        v = self.rest_axes() if axes is None else np.asarray(axes, np.float32)
        return v if self.n == 1 else (int(action), v)

    def rest_axes(self) -> np.ndarray:
        """Each axis at rest (no key held): float32 (n_axes,)."""
        return np.array([a.rest for a in self.axes], np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "keys": [list(k) for k in self.keys], "axes": [a.to_dict() for a in self.axes]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "action_spec") -> "ActionSpec":
        if not isinstance(d, dict) or "names" not in d:
            raise ValueError(f"{where}: expected an object with 'names', got {d!r}")
        return cls(
            names=tuple(str(n) for n in d["names"]),
            keys=tuple(tuple(str(k) for k in ks) for ks in d.get("keys", [])),
            axes=tuple(Axis.from_dict(a, f"{where}: axes[{i}]") for i, a in enumerate(d.get("axes", []))),
        )

    @classmethod
    def discrete(cls, n: int) -> "ActionSpec":
        """A generic spec for an env with ``n`` unnamed discrete actions (e.g. a Gymnasium env)."""
        keys = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
        return cls(
            names=tuple(f"action_{i}" for i in range(n)),
            keys=tuple((keys[i],) if i < len(keys) else () for i in range(n)),
        )
