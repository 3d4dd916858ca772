"""ActionSpec: the named actions of a world and their default keys.

It travels with every dataset (``meta.json``) and checkpoint (``config.json``), so a player, an
evaluator and a trainer agree on what action index 3 means. Discrete actions for now; ``axes`` is
kept for continuous controls later (empty means none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ActionSpec:
    names: tuple[str, ...]
    """Action names, index = action id. Index 0 is the no-op by convention."""
    keys: tuple[tuple[str, ...], ...] = ()
    """Default keyboard keys (DOM ``KeyboardEvent.key`` names) per action; may be empty per action."""
    axes: tuple[str, ...] = field(default=())
    """Names of continuous axes (reserved; none yet)."""

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("ActionSpec needs at least one action")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"ActionSpec names must be unique: {self.names}")
        if self.keys and len(self.keys) != len(self.names):
            raise ValueError(f"ActionSpec has {len(self.names)} names but {len(self.keys)} key lists")

    @property
    def n(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown action {name!r}; known: {list(self.names)}") from None

    def require_same(self, other: "ActionSpec", *, mine: str, theirs: str) -> None:
        """Raise ``ValueError`` naming both sources unless ``other`` has the same action names in the same order.

        A dataset whose actions are swapped against a model (up <-> down) would be scored or trained
        silently wrong, so a mismatch of count, names or order is an error. Keys may differ.
        """
        if tuple(self.names) != tuple(other.names):
            raise ValueError(f"action mismatch: {mine} has {self.n} actions {list(self.names)}, "
                             f"{theirs} has {other.n} {list(other.names)}")

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "keys": [list(k) for k in self.keys], "axes": list(self.axes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "action_spec") -> "ActionSpec":
        if not isinstance(d, dict) or "names" not in d:
            raise ValueError(f"{where}: expected an object with 'names', got {d!r}")
        return cls(
            names=tuple(str(n) for n in d["names"]),
            keys=tuple(tuple(str(k) for k in ks) for ks in d.get("keys", [])),
            axes=tuple(str(a) for a in d.get("axes", [])),
        )

    @classmethod
    def discrete(cls, n: int) -> "ActionSpec":
        """A generic spec for an env with ``n`` unnamed discrete actions (e.g. a Gymnasium env)."""
        keys = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
        return cls(
            names=tuple(f"action_{i}" for i in range(n)),
            keys=tuple((keys[i],) if i < len(keys) else () for i in range(n)),
        )
