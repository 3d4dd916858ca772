"""Dead reckoning: the camera pose from the actions taken, for place memory at run time.

Place memory finds a revisited place by the camera pose, and at run time that pose may come only from
what the model generated or from the actions. Integrating the shift the model's own frames show drifts
with every step the model scrolls wrong; integrating the actions drifts only where the world pushes the
agent off its course (walls, balls).

- :class:`Odometry` is fit from training data, where the pose is known: the agent's next step (px) given
  its last step and the action, the median over the data (a first-order kinematic model; on the
  arena, fit on 100 training episodes, it gets 95.1 % of the other 20's steps to the pixel, where the last 4
  actions as the key got 89 %: its velocity depends on more history than 4 actions show). It is saved with the
  checkpoint (``config.json``: ``odometry``), so a model carries the kinematics of its world.
- :class:`SnapTracker` turns the integrated, continuous position into the camera of a world whose camera
  snaps to latent cells. Where the snap falls depends on the position's phase within a cell, which no
  action says: of ``phases`` candidate phases per axis, it keeps the one whose snapped steps agree most
  (exponentially weighted) with the whole-cell shifts the model's frames show. The frames only choose
  among a few phases, so a step the model scrolls wrong cannot move the pose by more than a cell.

Measured by ``tools/pose_drift.py`` on 12 validation free-play rollouts of the shipped ``arena`` (walls and
balls included; docs/BENCHMARKS.md, "Memory"): median pose error after 128 / 256 steps 22 / 64 px from the
frames' shifts, 10 / 50 px from the actions with the tracked phase. Most of what is left is walls: the true
agent bounces off them, the model's keeps scrolling, and neither pose follows the truth there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

POSITION_KEYS = ("agent_pos", "camera")  # state keys an odometry is fit to, in order of preference


@dataclass
class Odometry:
    """The agent's next step (px, (dx, dy)) given its last step and the action: a table fit from data."""

    quantum: float = 0.5
    """Steps are looked up rounded to this many px per axis."""
    steps: dict[tuple[int, int, int], tuple[float, float]] = field(default_factory=dict)
    """(last dx, last dy in quanta, action) -> median next step, for every pair seen at least ``min_count`` times."""
    fallback: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Action -> median step over every last step: for a pair never seen."""
    source: str = ""
    """The state key the steps were measured on (what the odometry tracks)."""

    @classmethod
    def fit(cls, episodes: Iterable[tuple[np.ndarray, np.ndarray]], quantum: float = 0.5, min_count: int = 3,
            source: str = "") -> Odometry:
        """From (actions (T,), positions (T, 2)) per episode, ``actions[t]`` moving ``positions[t-1]`` to
        ``positions[t]`` (the dataset convention; an episode starts at rest)."""
        if quantum <= 0 or min_count < 1:
            raise ValueError(f"Odometry.fit: need quantum > 0 and min_count >= 1, got {quantum}, {min_count}")
        seen: dict[tuple[int, int, int], list[np.ndarray]] = defaultdict(list)
        by_action: dict[int, list[np.ndarray]] = defaultdict(list)
        for actions, pos in episodes:
            a, d = np.asarray(actions, np.int64), np.diff(np.asarray(pos, np.float64), axis=0)  # d[t-1]: step t
            last = np.zeros(2)
            for t in range(1, len(a)):
                seen[_key(last, int(a[t]), quantum)].append(d[t - 1])
                by_action[int(a[t])].append(d[t - 1])
                last = d[t - 1]
        steps = {k: _median(s) for k, s in seen.items() if len(s) >= min_count}
        if not steps:
            raise ValueError("Odometry.fit: no (step, action) pair was seen often enough (too little data)")
        return cls(quantum, steps, {a: _median(s) for a, s in by_action.items()}, source)

    def step(self, last: Sequence[float], action: int) -> tuple[float, float]:
        """The step ``action`` makes after a step of ``last`` px ((0, 0): at rest); (0, 0) for an action never seen."""
        s = self.steps.get(_key(last, action, self.quantum))
        return s if s is not None else self.fallback.get(action, (0.0, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"quantum": self.quantum, "source": self.source,
                "steps": {",".join(map(str, k)): [round(v, 3) for v in s] for k, s in sorted(self.steps.items())},
                "fallback": {str(a): [round(v, 3) for v in s] for a, s in sorted(self.fallback.items())}}

    @classmethod
    def from_dict(cls, d: Any, where: str = "odometry") -> Odometry:
        """The inverse of :meth:`to_dict`; a malformed entry raises naming ``where`` and the field at fault."""
        if not isinstance(d, dict) or not isinstance(d.get("quantum"), (int, float)) or not d["quantum"] > 0 \
                or not isinstance(d.get("steps"), dict) or not isinstance(d.get("fallback", {}), dict):
            raise ValueError(f"{where}: need {{'quantum': > 0, 'steps': {{'dx,dy,action': [dx, dy]}}, 'fallback': "
                             f"{{'action': [dx, dy]}}}}, got {str(d)[:80]}")
        tables: list[dict[Any, tuple[float, float]]] = [{}, {}]
        for table, name, n in ((tables[0], "steps", 3), (tables[1], "fallback", 1)):
            for key, s in d.get(name, {}).items():
                try:
                    k = tuple(int(x) for x in str(key).split(","))
                    dx, dy = (float(v) for v in s)
                    if len(k) != n:
                        raise ValueError
                except (TypeError, ValueError):
                    raise ValueError(f"{where}.{name}[{key!r}]: need a key of {n} comma-separated integers and [dx, dy], "
                                     f"got {s!r}") from None
                table[k if n > 1 else k[0]] = (dx, dy)
        return cls(float(d["quantum"]), tables[0], tables[1], str(d.get("source", "")))


def _key(last: Sequence[float], action: int, quantum: float) -> tuple[int, int, int]:
    return (round(float(last[0]) / quantum), round(float(last[1]) / quantum), action)


def _median(steps: list[np.ndarray]) -> tuple[float, float]:
    """Per axis, the median: a collision's step (a ball's push, a wall's bounce) is outvoted, not averaged in."""
    return tuple(float(v) for v in np.median(np.stack(steps), axis=0))


def fit_dataset(ds: Any) -> Odometry | None:
    """The odometry of a :class:`~worldloom.data.format.Dataset` whose episodes record a 2-D position
    (``POSITION_KEYS``) and discrete actions; None for any other (no pose to learn from)."""
    key = next((k for k in POSITION_KEYS if k in ds.state_keys), None)
    if key is None or ds.action_spec.n_axes:
        return None
    eps = [(ep.actions, ep.state[key]) for ep in ds]
    if any(p.ndim != 2 or p.shape[1] != 2 for _, p in eps):
        return None
    return Odometry.fit(eps, source=key)


def odometry_entry(ds: Any) -> dict[str, Any]:
    """What a checkpoint trained on ``ds`` records: ``{"odometry": ...}``, or nothing where none can be fit."""
    odo = fit_dataset(ds)
    return {} if odo is None else {"odometry": odo.to_dict()}


class SnapTracker:
    """Camera poses (B, 2) px of worlds whose camera snaps to ``snap`` px, from integrated odometry steps
    and the whole-cell shifts the model's frames show (which only choose the snap phase)."""

    def __init__(self, odometry: Odometry, batch: int, snap: float, phases: int = 8, decay: float = 0.9) -> None:
        self.odometry, self.snap, self.decay = odometry, float(snap), decay
        self.phase = torch.arange(phases, dtype=torch.float64) * self.snap / phases  # (P,) px
        self.last = [(0.0, 0.0)] * batch  # each row's last step, px: at rest at the reset, as the data's episodes start
        self.pos = torch.zeros((batch, 2), dtype=torch.float64)  # integrated position, px from the start
        self.score = torch.zeros((batch, phases, 2), dtype=torch.float64)
        self.cams = torch.zeros((batch, phases, 2), dtype=torch.float64)  # the snapped camera under each phase

    def update(self, action: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """One step: ``action`` (B,) taken, ``seen`` (B, 2) px the shift the frames show; returns the poses (B, 2)."""
        for b, a in enumerate(action.reshape(-1).tolist()):
            self.last[b] = self.odometry.step(self.last[b], int(a))
            self.pos[b] += torch.tensor(self.last[b], dtype=torch.float64)
        cams = self.snap * torch.floor((self.pos[:, None, :] + self.phase[None, :, None]) / self.snap)  # (B, P, 2)
        agree = ((cams - self.cams) == seen.double()[:, None, :]).double()
        self.score = self.decay * self.score + agree
        self.cams = cams
        return self.pose()

    def coast(self, seen: torch.Tensor) -> torch.Tensor:
        """A step whose action is unknown (a context frame): every phase's camera moves as the frames show."""
        self.pos += seen.double()
        self.cams += seen.double()[:, None, :]
        self.last = [tuple(float(v) for v in row) for row in seen.double()]
        return self.pose()

    def pose(self) -> torch.Tensor:
        best = self.score.argmax(1, keepdim=True)  # (B, 1, 2): the first of equals, phase 0, until the frames say
        return self.cams.gather(1, best)[:, 0]
