"""Collection policies: what drives an env while a dataset is recorded.

A policy is anything with ``name``, ``reset(seed)``, ``act(obs, info) -> int`` and ``to_dict()``
(saved into the dataset's ``meta.json``). Action 0 is the no-op by convention. For an env with
continuous axes (a Gymnasium ``Box``), :class:`AxisWalk` returns the axis values instead
(:func:`make_axis_policy`); for one with both, :class:`CompositePolicy` returns the pair.

The default, :class:`MomentumWalk`, is chosen for what a world model must learn: actions are held
for a while (so motion is visible and the action's effect is not drowned in jitter), with no-ops
(so stopping is seen) and, when the env reports the agent's position, occasional trips back to
places seen a while ago (so the data holds revisits, which memory needs to be trained and scored).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

# Arena action ids (see worldloom.envs.arena.ARENA_ACTIONS); used only when steering back.
_UP, _DOWN, _LEFT, _RIGHT = 1, 2, 3, 4


@runtime_checkable
class Policy(Protocol):
    name: str

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: Any, info: dict[str, Any]) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...


class RandomPolicy:
    """Uniformly random actions."""

    name = "random"

    def __init__(self, n_actions: int, seed: int | None = None):
        if n_actions < 1:
            raise ValueError(f"RandomPolicy: n_actions must be >= 1, got {n_actions}")
        self.n_actions, self.seed = n_actions, seed
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self.seed if seed is None else seed)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return int(self.rng.integers(self.n_actions))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n_actions": self.n_actions, "seed": self.seed}


class MomentumWalk:
    """Random walk that holds actions and, given the agent's position, turns back to places it saw.

    Each step: keep the current action with prob ``p_keep``, else pick a new one (noop with prob
    ``p_noop``, else a uniform non-noop action). With prob ``revisit_prob`` it instead steers to a
    remembered position at least ``revisit_min_age`` steps old (arena actions: along the axis with
    the larger remaining distance, sometimes the other one) until within ``arrive_px`` or
    ``max_return_steps`` have passed. Without ``info["state"]["agent_pos"]`` (a generic Gymnasium
    env, or ``n_actions < 5``) it is a plain momentum walk.
    """

    name = "momentum"

    def __init__(
        self,
        n_actions: int = 5,
        p_keep: float = 0.8,
        p_noop: float = 0.1,
        revisit_prob: float = 0.03,
        revisit_min_age: int = 24,
        seed: int | None = None,
        arrive_px: float = 8.0,
        max_return_steps: int = 64,
        memory: int = 4096,
    ):
        if n_actions < 1:
            raise ValueError(f"MomentumWalk: n_actions must be >= 1, got {n_actions}")
        for k, p in (("p_keep", p_keep), ("p_noop", p_noop), ("revisit_prob", revisit_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"MomentumWalk: {k} must be in [0, 1], got {p}")
        self.n_actions, self.p_keep, self.p_noop, self.seed = n_actions, p_keep, p_noop, seed
        self.revisit_prob, self.revisit_min_age = revisit_prob, revisit_min_age
        self.arrive_px, self.max_return_steps, self.memory = arrive_px, max_return_steps, memory
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self.seed if seed is None else seed)
        self.action = 0
        self.visited: deque[tuple[float, float]] = deque(maxlen=self.memory)  # one entry per step
        self.target: tuple[float, float] | None = None  # set while returning to a remembered place
        self.return_steps = 0

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        pos = _agent_pos(info) if self.n_actions >= 5 else None
        if pos is not None:
            self.visited.append(pos)
            if self.target is None and len(self.visited) > self.revisit_min_age and self.rng.random() < self.revisit_prob:
                # Any place at least revisit_min_age steps old (the newest entry is the current step).
                self.target = self.visited[int(self.rng.integers(len(self.visited) - self.revisit_min_age))]
                self.return_steps = 0
            if self.target is not None:
                dx, dy = self.target[0] - pos[0], self.target[1] - pos[1]
                self.return_steps += 1
                if dx * dx + dy * dy <= self.arrive_px**2 or self.return_steps > self.max_return_steps:
                    self.target = None  # arrived (or gave up): resume the walk from here
                else:
                    along_x = abs(dx) >= abs(dy)
                    if self.rng.random() < 0.15:  # a little randomness, so returns are not straight lines
                        along_x = not along_x
                    if along_x:
                        self.action = _RIGHT if dx > 0 else _LEFT
                    else:
                        self.action = _DOWN if dy > 0 else _UP
                    return self.action
        if self.rng.random() >= self.p_keep:
            if self.n_actions == 1 or self.rng.random() < self.p_noop:
                self.action = 0
            else:
                self.action = 1 + int(self.rng.integers(self.n_actions - 1))
        return self.action

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "n_actions": self.n_actions, "p_keep": self.p_keep, "p_noop": self.p_noop,
            "revisit_prob": self.revisit_prob, "revisit_min_age": self.revisit_min_age, "seed": self.seed,
            "arrive_px": self.arrive_px, "max_return_steps": self.max_return_steps, "memory": self.memory,
        }


class ScriptedPolicy:
    """Plays a fixed action sequence; with ``loop=False``, noop (0) once it is used up."""

    name = "scripted"

    def __init__(self, actions: Sequence[int], loop: bool = True):
        if len(actions) == 0:
            raise ValueError("ScriptedPolicy: needs at least one action")
        self.actions, self.loop = [int(a) for a in actions], loop
        self.t = 0

    def reset(self, seed: int | None = None) -> None:
        self.t = 0

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        i, self.t = self.t, self.t + 1
        if i >= len(self.actions):
            if not self.loop:
                return 0
            i %= len(self.actions)
        return self.actions[i]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "actions": list(self.actions), "loop": self.loop}


POLICIES = ("momentum", "random")


class AxisWalk:
    """Continuous actions for ``Box`` envs: a smooth random walk inside each axis's range.

    ``momentum``: each step the values move ``1 - smooth`` of the way to a target, and the target is
    redrawn uniformly in the range with prob ``p_retarget`` (held pushes, so their effect shows; the
    whole range is visited). ``random``: a fresh uniform draw every step.

    ``draw``: per axis, the (lo, hi) the targets are drawn from, inside the axis's range (lo == hi holds
    the axis at one value). The range itself (the model's normalisation) stays the env's: a driving
    game is collected with the gas mostly on and the brake off, and its model still takes any pedal.
    """

    def __init__(self, lows: Sequence[float], highs: Sequence[float], seed: int | None = None, *,
                 name: str = "momentum", smooth: float = 0.7, p_retarget: float = 0.1,
                 draw: Sequence[tuple[float, float] | None] | None = None) -> None:
        self.lows, self.highs = np.asarray(lows, np.float64), np.asarray(highs, np.float64)
        if self.lows.shape != self.highs.shape or not np.all(self.lows < self.highs):
            raise ValueError(f"AxisWalk: need low < high per axis, got {self.lows.tolist()}, {self.highs.tolist()}")
        if name not in POLICIES or not 0.0 <= smooth < 1.0 or not 0.0 < p_retarget <= 1.0:
            raise ValueError(f"AxisWalk: name in {POLICIES}, 0 <= smooth < 1, 0 < p_retarget <= 1; got {name!r}, {smooth}, {p_retarget}")
        draw = list(draw) if draw is not None else [None] * len(self.lows)
        if len(draw) != len(self.lows):
            raise ValueError(f"AxisWalk: draw has {len(draw)} entries for {len(self.lows)} axes")
        self.draw_lows, self.draw_highs = self.lows.copy(), self.highs.copy()
        for i, r in enumerate(draw):
            if r is None:
                continue
            lo, hi = float(r[0]), float(r[1])
            if not self.lows[i] <= lo <= hi <= self.highs[i]:
                raise ValueError(f"AxisWalk: axis {i}'s draw range {lo}:{hi} must lie inside its range "
                                 f"{self.lows[i]}:{self.highs[i]} with low <= high")
            self.draw_lows[i], self.draw_highs[i] = lo, hi
        self.name, self.seed, self.smooth, self.p_retarget = name, seed, smooth, p_retarget
        self.reset(seed)

    def _draw(self) -> np.ndarray:
        return self.rng.uniform(self.draw_lows, self.draw_highs)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self.seed if seed is None else seed)
        self.value = np.clip(np.zeros_like(self.lows), self.draw_lows, self.draw_highs)
        self.target = self._draw()

    def act(self, obs: Any, info: dict[str, Any]) -> np.ndarray:
        if self.name == "random":
            return self._draw().astype(np.float32)
        if self.rng.random() < self.p_retarget:
            self.target = self._draw()
        self.value = self.smooth * self.value + (1 - self.smooth) * self.target
        return np.clip(self.value, self.lows, self.highs).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "axes", "low": self.lows.tolist(), "high": self.highs.tolist(),
                "draw_low": self.draw_lows.tolist(), "draw_high": self.draw_highs.tolist(),
                "smooth": self.smooth, "p_retarget": self.p_retarget, "seed": self.seed}


class CompositePolicy:
    """Composite actions (a discrete id and axis values, e.g. keys plus a mouse delta): a discrete policy
    and an :class:`AxisWalk` side by side, each on its own random stream; ``act`` returns ``(id, values)``."""

    def __init__(self, discrete: Policy, axes: AxisWalk) -> None:
        self.discrete, self.axes = discrete, axes
        self.name = discrete.name

    def reset(self, seed: int | None = None) -> None:
        # Apart streams: seeding both with one seed would tie which key is held to where the axes walk.
        self.discrete.reset(None if seed is None else int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0]))
        self.axes.reset(seed)

    def act(self, obs: Any, info: dict[str, Any]) -> tuple[int, np.ndarray]:
        return int(self.discrete.act(obs, info)), self.axes.act(obs, info)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "composite", "discrete": self.discrete.to_dict(), "axes": self.axes.to_dict()}


def make_axis_policy(name: str, lows: Sequence[float], highs: Sequence[float], seed: int | None = None,
                     draw: Sequence[tuple[float, float] | None] | None = None) -> AxisWalk:
    """The continuous-axis counterpart of :func:`make_policy`: ``"momentum"`` (smooth walk) | ``"random"``;
    ``draw`` narrows the values each axis is driven with (:class:`AxisWalk`)."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known: {list(POLICIES)}")
    return AxisWalk(lows, highs, seed, name=name, draw=draw)


def make_policy(name: str, n_actions: int, seed: int | None = None, **kwargs: Any) -> Policy:
    """A collection policy by name: ``"momentum"`` | ``"random"``; ``kwargs`` go to its constructor."""
    if name == "momentum":
        return MomentumWalk(n_actions=n_actions, seed=seed, **kwargs)
    if name == "random":
        return RandomPolicy(n_actions, seed=seed, **kwargs)
    raise ValueError(f"unknown policy {name!r}; known: {list(POLICIES)}")


def _agent_pos(info: dict[str, Any]) -> tuple[float, float] | None:
    state = info.get("state") if isinstance(info, dict) else None
    if not isinstance(state, dict) or "agent_pos" not in state:
        return None
    x, y = state["agent_pos"][:2]
    return float(x), float(y)
