"""Phys2D: the 2-D scenes of PhyWorld (Kang et al. 2024) for testing whether a video model learned physics.

Three scenes, simulated with Box2D and drawn as red and blue balls on white, as in PhyWorld:

- ``uniform``: one red ball moving right at constant speed (no gravity).
- ``parabola``: one red ball launched rightwards near the top, falling under gravity 2.5 units/s^2.
- ``collision``: a red ball (left, moving right) and a blue ball (right, moving left) at the same
  height collide head-on, elastically. Density 1, so mass = pi r^2.

Settings follow PhyWorld: a 10 x 10 unit world, 0.1 s per frame (10 Box2D steps of 0.01 s, 15
velocity / 20 position iterations), 32 frames, no walls (balls leave the view). Speeds (units/s)
and radii (units) are drawn per episode, in distribution (id) or out of it (ood):

- id: uniform/parabola speed 1-4, radius 0.7-1.4; collision speeds 1-4, radii 0.5-1.5.
- ood: speed 0-0.8 or 4.5-6; radius 0.3-0.6 or 1.5-2.0 (collision: 0.3-0.4 or 1.7-2.0, PhyWorld's
  collision bands, because the issue's 0.3-0.6 / 1.5-2.0 overlap the collision id range 0.5-1.5).
  An ood episode takes radius, speed or both from the ood bands (each value picks low or high).

Deviations from PhyWorld, each for 64 x 64 frames or for a clean measurement:

- 64 px frames (6.4 px per unit) instead of 256/128 px; discs are anti-aliased by 4 x 4
  supersampling (PhyWorld softens edges too), so sub-pixel motion shows in edge intensities.
- Frame k is the state at exactly t = 0.1 k s (PhyWorld's first frame comes after one 0.01 s step).
- Collision scenes are placed exactly rather than by retry: the first contact falls between frame
  ``MIN_PRE`` = 5 (PhyWorld: 8; 5 keeps every id draw feasible, and contact still comes after the 4
  context frames) and frame 32 - ``MIN_POST`` = 24, with both balls fully in view at frame 0.
  Draws that cannot meet this (e.g. big and fast ood balls, or closing speed < 0.25) are redrawn.
- Box2D treats contacts slower than 1 m/s as inelastic (``b2_velocityThreshold``, compiled in). The
  simulation therefore runs at ``B2_PER_UNIT`` = 10 Box2D metres per unit, so slow ood collisions
  (closing speed >= 0.25 units/s) stay elastic; positions and velocities are reported in units.

Coordinates: world units with x right and y **up** (PhyWorld's); frames have y down, and
``info["state"]`` also gives pixel positions (``*_px``: x right, y down, pixel (r, c) covers
[c, c+1) x [r, r+1)). Ball slot 0 is always red, slot 1 blue (``ball_present`` = 0 when unused).
The only action is ``noop``: the scenes are action-free.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from worldloom.actions import ActionSpec
from worldloom.config import doc

with warnings.catch_warnings():  # the SWIG-built wheel warns about its own types on import; nothing to act on
    warnings.simplefilter("ignore", DeprecationWarning)
    import Box2D

PHYS2D_ACTIONS = ActionSpec(names=("noop",), keys=((" ",),))
SCENARIOS = ("uniform", "parabola", "collision")
DISTRIBUTIONS = ("id", "ood")
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
COLORS = (RED, BLUE)

B2_PER_UNIT = 10.0  # Box2D metres per world unit (keeps slow collisions above Box2D's restitution threshold)
SUPERSAMPLE = 4  # anti-aliasing: 4 x 4 coverage samples per pixel
MIN_PRE, MIN_POST = 5, 8  # collision: first contact after >= MIN_PRE frames, with >= MIN_POST frames left
MIN_VISIBLE = 24  # uniform/parabola: frames the ball should stay in view at its speed (PhyWorld's NUM_MIN_FRAMES)
MIN_CLOSING = 0.25  # collision: smallest closing speed drawn, units/s
MARGIN = 0.05  # keep balls this fraction of the world away from the top/bottom edge at the start

SPEED_ID = (1.0, 4.0)
SPEED_OOD = ((0.0, 0.8), (4.5, 6.0))
RADIUS_ID = {"uniform": (0.7, 1.4), "parabola": (0.7, 1.4), "collision": (0.5, 1.5)}
RADIUS_OOD = {"uniform": ((0.3, 0.6), (1.5, 2.0)), "parabola": ((0.3, 0.6), (1.5, 2.0)),
              "collision": ((0.3, 0.4), (1.7, 2.0))}


@dataclass
class Phys2DConfig:
    frame_size: int = doc(64, "side of the square observation, px")
    world_size: float = doc(10.0, "side of the square world shown in the frame, units")
    dt: float = doc(0.1, "seconds per frame (one env step)")
    substeps: int = doc(10, "Box2D steps per frame")
    frames: int = doc(32, "frames per episode: the episode truncates after frames - 1 steps")
    gravity: float = doc(2.5, "downward acceleration in the parabola scene, units/s^2")
    scenario: str = doc("mixed", choices=("uniform", "parabola", "collision", "mixed"), text="uniform | parabola | collision | mixed (uniform draw per episode)")
    distribution: str = doc("id", choices=("id", "ood", "mixed"), text="id | ood | mixed (half each): the ranges speeds and radii are drawn from")

    def __post_init__(self) -> None:
        if self.frame_size < 8:
            raise ValueError(f"Phys2DConfig.frame_size must be >= 8, got {self.frame_size}")
        if not self.dt > 0:
            raise ValueError(f"Phys2DConfig.dt must be > 0, got {self.dt}")
        if not self.world_size >= 8.0:  # the ranges are in units: a radius-2 ball plus margins must fit
            raise ValueError(f"Phys2DConfig.world_size must be >= 8 units (PhyWorld: 10), got {self.world_size}")
        if self.substeps < 1 or self.frames < 2:
            raise ValueError(f"Phys2DConfig: substeps must be >= 1 and frames >= 2, got {self.substeps}, {self.frames}")
        if self.gravity < 0:
            raise ValueError(f"Phys2DConfig.gravity must be >= 0, got {self.gravity}")
        _check_choice("Phys2DConfig.scenario", self.scenario, SCENARIOS)
        _check_choice("Phys2DConfig.distribution", self.distribution, DISTRIBUTIONS)
        if self.scenario in ("collision", "mixed"):
            self.check_collision_fits("Phys2DConfig")

    def check_collision_fits(self, where: str) -> None:
        if self.frames < MIN_PRE + MIN_POST + 1:
            raise ValueError(f"{where}: frames={self.frames} is too short for a collision scene (contact after "
                             f">= {MIN_PRE} frames with >= {MIN_POST} left needs frames >= {MIN_PRE + MIN_POST + 1})")

    @property
    def px_per_unit(self) -> float:
        return self.frame_size / self.world_size


def _check_choice(field: str, value: str, known: tuple[str, ...]) -> None:
    if value not in (*known, "mixed"):
        raise ValueError(f"{field} must be one of {[*known, 'mixed']}, got {value!r}")


class Phys2DEnv(gym.Env):
    """PhyWorld scenes: ``Discrete(1)`` (noop), (S, S, 3) uint8 frames, truth in ``info["state"]``.

    ``reset(options={"scenario": ..., "distribution": ...})`` fixes this episode's scene and ranges.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    action_spec = PHYS2D_ACTIONS

    def __init__(self, config: Phys2DConfig | None = None, render_mode: str | None = "rgb_array", **overrides: Any):
        if config is None:
            config = Phys2DConfig(**overrides)
        elif overrides:
            raise ValueError(f"Phys2DEnv: pass a config or field overrides, not both ({sorted(overrides)})")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not supported; known: {self.metadata['render_modes']}")
        self.metadata = {**self.metadata, "render_fps": max(1, round(1.0 / config.dt))}
        self.cfg, self.render_mode = config, render_mode
        s = config.frame_size
        self.observation_space = gym.spaces.Box(0, 255, (s, s, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(1)
        self._world: Box2D.b2World | None = None
        self._bodies: list[Any] = []
        self._frame: np.ndarray | None = None
        self._steps = 0
        self.scenario, self.distribution = "", ""
        self.radius = np.zeros(2)  # units; 0 for an unused slot

    # ---------------------------------------------------------------- scene
    def _draw_params(self, rng: np.random.Generator, scenario: str, ood: bool) -> tuple[np.ndarray, np.ndarray]:
        """Radii (n,) and speeds (n,) for the scene, from the id ranges or the ood bands."""
        n = 2 if scenario == "collision" else 1
        which = int(rng.integers(3)) if ood else -1  # 0: radius ood, 1: speed ood, 2: both

        def draw(id_range: tuple[float, float], bands: tuple[tuple[float, float], ...], out: bool) -> np.ndarray:
            if not out:
                return rng.uniform(*id_range, size=n)
            return np.array([rng.uniform(*bands[int(rng.integers(len(bands)))]) for _ in range(n)])

        r = draw(RADIUS_ID[scenario], RADIUS_OOD[scenario], which in (0, 2))
        v = draw(SPEED_ID, SPEED_OOD, which in (1, 2))
        return r, v

    def _layout(self, rng: np.random.Generator, scenario: str, ood: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Radii (n,), start positions (n, 2) and velocities (n, 2) in units, y up."""
        W, dt, T = self.cfg.world_size, self.cfg.dt, self.cfg.frames
        if scenario != "collision":
            (r,), (v,) = self._draw_params(rng, scenario, ood)
            # Start fully in view and, where the speed allows, stay in view for MIN_VISIBLE frames.
            hi = W - r - MIN_VISIBLE * dt * v
            x = rng.uniform(r, hi) if hi > r else r + rng.uniform(0, 0.05 * W)
            if scenario == "uniform":
                y = rng.uniform(r + MARGIN * W, (1 - MARGIN) * W - r)
            else:  # parabola: launched from near the top (PhyWorld: within 1 unit below the margin)
                y = rng.uniform((1 - MARGIN) * W - r - 0.1 * W, (1 - MARGIN) * W - r)
            return np.array([r]), np.array([[x, y]]), np.array([[v, 0.0]])
        for _ in range(1000):
            r, v = self._draw_params(rng, scenario, ood)
            closing = v[0] + v[1]
            if closing < MIN_CLOSING:
                continue
            # Contact after k frames: the gap between the balls' surfaces is k dt (v0 + v1).
            k_hi = min(T - 1 - MIN_POST, (W - 2 * r.sum()) / (dt * closing))
            if k_hi < MIN_PRE:
                continue  # cannot start both fully in view and still collide late enough
            gap = rng.uniform(MIN_PRE, k_hi) * dt * closing
            x0 = rng.uniform(r[0], max(r[0], W - 2 * r[1] - r[0] - gap))
            x1 = x0 + r[0] + r[1] + gap
            y = rng.uniform(r.max() + MARGIN * W, (1 - MARGIN) * W - r.max())
            return r, np.array([[x0, y], [x1, y]]), np.array([[v[0], 0.0], [-v[1], 0.0]])
        raise RuntimeError(f"Phys2DEnv: no feasible collision layout in 1000 draws (world_size={W}, frames={T})")

    def _build(self, radius: np.ndarray, pos: np.ndarray, vel: np.ndarray, gravity: float) -> None:
        S = B2_PER_UNIT
        self._world = Box2D.b2World(gravity=(0.0, -gravity * S), doSleep=False)
        self._bodies = []
        for r, p, v in zip(radius, pos, vel):
            body = self._world.CreateDynamicBody(position=(float(p[0] * S), float(p[1] * S)),
                                                 linearVelocity=(float(v[0] * S), float(v[1] * S)))
            body.CreateCircleFixture(radius=float(r * S), density=1.0, restitution=1.0, friction=0.0)
            self._bodies.append(body)

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        opts = dict(options or {})
        unknown = sorted(set(opts) - {"scenario", "distribution"})
        if unknown:
            raise ValueError(f"Phys2DEnv.reset: unknown option(s) {unknown}; known: ['scenario', 'distribution']")
        scenario = opts.get("scenario", self.cfg.scenario)
        dist = opts.get("distribution", self.cfg.distribution)
        _check_choice("reset option 'scenario'", scenario, SCENARIOS)
        _check_choice("reset option 'distribution'", dist, DISTRIBUTIONS)
        rng = self.np_random
        if scenario == "mixed":
            scenario = SCENARIOS[int(rng.integers(len(SCENARIOS)))]
        if dist == "mixed":
            dist = DISTRIBUTIONS[int(rng.integers(2))]
        if scenario == "collision":
            self.cfg.check_collision_fits("Phys2DEnv.reset")
        self.scenario, self.distribution = scenario, dist
        radius, pos, vel = self._layout(rng, scenario, dist == "ood")
        self._build(radius, pos, vel, self.cfg.gravity if scenario == "parabola" else 0.0)
        self.radius = np.zeros(2)
        self.radius[: len(radius)] = radius
        self._steps = 0
        self._frame = self._render_frame()
        return self._frame, self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._world is None:
            raise RuntimeError("Phys2DEnv.step() called before reset()")
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}; phys2d has one action: 0 ('noop')")
        h = self.cfg.dt / self.cfg.substeps
        for _ in range(self.cfg.substeps):
            self._world.Step(h, 15, 20)  # PhyWorld's iteration counts
        self._steps += 1
        self._frame = self._render_frame()
        return self._frame, 0.0, False, self._steps >= self.cfg.frames - 1, self._info()

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("Phys2DEnv.render() called with render_mode=None; pass render_mode='rgb_array'")
            return None
        if self._frame is None:
            raise RuntimeError("Phys2DEnv.render() called before reset()")
        return self._frame.copy()

    # ---------------------------------------------------------------- state
    def get_state(self) -> dict[str, Any]:
        """Ground truth, fixed shapes for every scene (2 ball slots): see the module docstring."""
        if self._world is None:
            raise RuntimeError("Phys2DEnv.get_state() called before reset()")
        S, W, k = B2_PER_UNIT, self.cfg.world_size, self.cfg.px_per_unit
        pos, vel = np.zeros((2, 2)), np.zeros((2, 2))  # (slot, xy) units, y up
        for i, b in enumerate(self._bodies):
            pos[i], vel[i] = np.array(b.position) / S, np.array(b.linearVelocity) / S
        present = np.array([i < len(self._bodies) for i in range(2)], np.float32)
        pos_px = np.stack([pos[:, 0] * k, (W - pos[:, 1]) * k], axis=1) * present[:, None]  # (2, 2) x right, y down
        vel_px = np.stack([vel[:, 0], -vel[:, 1]], axis=1) * (k * self.cfg.dt)  # px per step, y down
        return {
            "scenario": np.float32(SCENARIOS.index(self.scenario)),
            "ood": np.float32(self.distribution == "ood"),
            "time": np.float32(self._steps * self.cfg.dt),
            "ball_present": present,
            "ball_pos": pos.astype(np.float32),
            "ball_vel": vel.astype(np.float32),
            "ball_radius": self.radius.astype(np.float32),
            "ball_mass": (math.pi * self.radius**2).astype(np.float32),  # density 1
            "ball_pos_px": pos_px.astype(np.float32),
            "ball_vel_px": vel_px.astype(np.float32),
            "ball_radius_px": (self.radius * k).astype(np.float32),
            "px_per_unit": np.float32(k),
        }

    def _info(self) -> dict[str, Any]:
        return {"state": self.get_state(), "step": self._steps, "scenario": self.scenario,
                "distribution": self.distribution}

    # ---------------------------------------------------------------- rendering
    def _render_frame(self) -> np.ndarray:
        s, k, W = self.cfg.frame_size, self.cfg.px_per_unit, self.cfg.world_size
        frame = np.empty((s, s, 3), np.float32)  # (s, s, 3)
        frame[:] = WHITE
        sub = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE  # sample offsets inside a pixel
        for i, body in enumerate(self._bodies):
            x, y = np.array(body.position) / B2_PER_UNIT
            cx, cy, rp = x * k, (W - y) * k, self.radius[i] * k  # px, y down
            c0, c1 = max(math.floor(cx - rp), 0), min(math.ceil(cx + rp) + 1, s)
            r0, r1 = max(math.floor(cy - rp), 0), min(math.ceil(cy + rp) + 1, s)
            if c0 >= c1 or r0 >= r1:
                continue  # out of view
            xs = (np.arange(c0, c1)[:, None] + sub).ravel() - cx  # (nc * SS,)
            ys = (np.arange(r0, r1)[:, None] + sub).ravel() - cy  # (nr * SS,)
            inside = ys[:, None] ** 2 + xs[None, :] ** 2 <= rp * rp  # (nr * SS, nc * SS)
            cov = inside.reshape(r1 - r0, SUPERSAMPLE, c1 - c0, SUPERSAMPLE).mean(axis=(1, 3))[..., None]
            patch = frame[r0:r1, c0:c1]
            patch[:] = patch * (1.0 - cov) + np.array(COLORS[i], np.float32) * cov
        return np.clip(np.rint(frame), 0, 255).astype(np.uint8)
