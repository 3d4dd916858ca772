"""Arena: the hero world. A top-down agent pushes bouncing balls around a large decorated floor.

Design choices (each one is there so that a small video world model can learn the world):

- **Camera follows the agent, snapped to a 4 px grid.** The 64 px view shows a corner of a 256 px
  world, so most of what the model must predict is the background scrolling in response to the
  action. Snapping makes the scroll a whole multiple of 4 px, i.e. one latent cell of the 4x VAE:
  the dynamics model shifts latents by whole cells instead of inventing sub-pixel blends.
- **Recognisable places.** The floor is a seeded smooth colour field with faint 16 px grid lines and
  distinct landmark decals (shape x colour), so a revisited place looks the same: memory and
  persistence can be scored. The camera is not clamped; beyond the walls the view shows a dark colour.
- **Real physics, simple control.** pymunk does every collision (ball-ball, ball-wall, ball-agent,
  agent-wall; elastic, frictionless, no damping). Control has inertia with a bounded acceleration:
  each step the velocity moves towards ``max_speed * dir(action)`` by at most ``accel`` px/step per
  axis, so the agent reaches full speed in two steps, noop brakes to a stop in two, and a
  collision's effect on the agent carries into the next step. With the defaults (4 and 2 px/step)
  every free step is a whole 2 px multiple, so whether the 4 px camera snaps on a step is decided by
  what the frames show (the agent's drawn pixel and its last step). The first worlds' exponential
  approach ``v <- inertia v + (1 - inertia) max_speed dir`` (``control="smooth"``) never quite reached
  full speed: the agent fell a whole cell behind over a start's first ~6 steps, and the step where the
  camera lagged was set by sub-pixel positions no frame shows. Walls are elastic for the agent too:
  holding a direction into one bounces it (velocities 2, -4, -2, 0, ...).
- **Balls slower than the agent** (0.5-1.5 px/step at the start, capped at 3 after a push). A ball on
  screen stays there for longer, so a model sees its motion over more frames: with the whole recipe,
  balls kept h1-8 on test rose from 38 to 74 % (copy-last 39 to 53 %); the earlier 1-3 px/step cap 6
  world stays what records without these fields rebuild (envs.registry).
- **Fast, exact rendering.** The background is drawn once per episode (padded by ``view`` px of
  outside colour); a frame is a slice of it plus integer-positioned aliasing-free disc sprites.
  No pygame. Thousands of frames/s on one core, and the drawn frame agrees with ``info["state"]``:
  an object at world position ``p`` covers the pixel ``floor(p - camera)``.

Coordinates: world px, x right, y down (up on screen = -y); 1 world unit = ``PX_PER_UNIT`` px;
1 env step = 1 time unit, so velocities are px/step. ``info["state"]`` reports both px and units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pymunk

from worldloom.actions import ActionSpec
from worldloom.config import doc

PX_PER_UNIT = 16

ARENA_ACTIONS = ActionSpec(
    names=("noop", "up", "down", "left", "right"),
    keys=((" ",), ("ArrowUp", "w"), ("ArrowDown", "s"), ("ArrowLeft", "a"), ("ArrowRight", "d")),
)
# Unit direction per action, screen coordinates (up = -y).
_DIRS = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)], dtype=np.float64)  # (5, 2)

WALL_PX = 8  # width of the wall band drawn on each side of the world
OUTSIDE = (40, 40, 48)  # wall band and everything beyond the world
AGENT_FILL, AGENT_OUTLINE = (235, 235, 228), (25, 25, 30)
# Balls: pure saturated hues. Landmarks: in-between hues, so no landmark is mistaken for a ball.
BALL_COLORS = ((230, 30, 30), (30, 80, 240), (245, 215, 20), (225, 30, 225), (20, 215, 225), (30, 190, 40))
LANDMARK_COLORS = (
    (255, 140, 0), (0, 140, 130), (150, 225, 0), (130, 70, 20), (20, 30, 130), (255, 150, 205),
    (130, 0, 45), (115, 115, 0), (155, 90, 255), (95, 185, 255), (15, 95, 35), (255, 105, 85),
    (95, 245, 170), (95, 25, 90),
)
LANDMARK_SHAPES = ("square", "disc", "ring", "cross", "triangle", "diamond")


@dataclass
class ArenaConfig:
    world_size: int = doc(256, "side of the square world, px")
    view: int = doc(64, "side of the square observation, px")
    n_balls: int = doc(4, "number of bouncing balls")
    ball_radius: float = doc(5.0, "ball radius, px")
    agent_radius: float = doc(5.0, "agent radius, px")
    max_speed: float = doc(4.0, "agent speed under a held direction, px/step")
    control: str = doc("accel", choices=("accel", "smooth"), text="agent control law: 'accel' (velocity moves towards max_speed x dir by at most `accel` per axis) or 'smooth' (v <- inertia v + (1 - inertia) max_speed dir)")
    accel: float = doc(2.0, "'accel' control: most the velocity changes per step on each axis, px/step")
    inertia: float = doc(0.5, "'smooth' control: fraction of the agent's velocity kept each step before the action's push")
    ball_speed_min: float = doc(0.5, "slowest initial ball speed, px/step (drawn uniformly, random direction)")
    ball_speed_max: float = doc(1.5, "fastest initial ball speed, px/step")
    max_ball_speed: float = doc(3.0, "balls faster than this are slowed to it after each step, px/step")
    camera_snap: int = doc(4, "the camera moves on a grid of this many px (one 4x-VAE latent cell)")
    follow: bool = doc(True, "the camera follows the agent; False: it stays centred on the world (a still view, "
                             "for worlds no larger than the view and for controlled runs)")
    n_landmarks: int = doc(14, "number of floor decals that make places recognisable")
    plain_floor: bool = doc(False, "one flat floor colour (the field's mean), no colour field and no grid lines: "
                                   "for controlled runs; the layout is the same as the textured world's of that seed")
    smooth_balls: bool = doc(False, "draw balls anti-aliased at their exact sub-pixel position (coverage blended "
                                    "with the floor), as phys2d draws its discs, instead of hard-edged at floor(p): for controlled runs")
    physics_substeps: int = doc(4, "pymunk substeps per env step")
    max_steps: int = doc(1000, "episode truncation, steps")

    def __post_init__(self) -> None:
        if self.view <= 0 or self.world_size <= 2 * WALL_PX + 4 * max(self.ball_radius, self.agent_radius):
            raise ValueError(f"ArenaConfig: world_size={self.world_size} too small or view={self.view} invalid")
        if self.control not in ("accel", "smooth"):
            raise ValueError(f"ArenaConfig: control must be 'accel' or 'smooth', got {self.control!r}")
        if not self.accel > 0.0:
            raise ValueError(f"ArenaConfig: accel must be > 0, got {self.accel}")
        if not 0.0 <= self.inertia < 1.0:
            raise ValueError(f"ArenaConfig: inertia must be in [0, 1), got {self.inertia}")
        if not 0.0 <= self.ball_speed_min <= self.ball_speed_max <= self.max_ball_speed:
            raise ValueError(f"ArenaConfig: need 0 <= ball_speed_min <= ball_speed_max <= max_ball_speed, got "
                             f"{self.ball_speed_min}, {self.ball_speed_max}, {self.max_ball_speed}")
        if self.camera_snap < 1 or self.physics_substeps < 1 or self.n_balls < 0 or self.n_landmarks < 0:
            raise ValueError(f"ArenaConfig: invalid {self}")


def _disc_sprite(radius: float, fill: tuple[int, int, int], outline: tuple[int, int, int] | None = None):
    """An RGB sprite (2r+1, 2r+1, 3) and its mask (2r+1, 2r+1), centred on the middle pixel."""
    r = int(math.ceil(radius))
    d = np.arange(-r, r + 1)
    d2 = d[None, :] ** 2 + d[:, None] ** 2
    mask = d2 <= radius**2
    rgb = np.empty((2 * r + 1, 2 * r + 1, 3), np.uint8)
    rgb[:] = fill
    if outline is not None:  # 1-px ring: inside the disc but not inside the disc one px smaller
        rgb[mask & (d2 > (radius - 1) ** 2)] = outline
    return rgb, mask


def _blend_disc(frame: np.ndarray, fill: np.ndarray, radius: float, pos: Any, cx: int, cy: int) -> None:
    """Blend a disc of ``fill`` centred exactly on ``pos - camera`` into ``frame`` (v, v, 3), in place.

    A pixel's weight is its approximate coverage, ``clip(radius + 0.5 - distance of its centre, 0, 1)``,
    so a ball moving 0.3 px changes the frame by 0.3 px worth of edge, not by a whole pixel now and then.
    """
    v = frame.shape[0]
    fx, fy = pos[0] - cx, pos[1] - cy  # ball centre in frame px; pixel i spans [i, i + 1)
    r = int(math.ceil(radius)) + 1
    x0, y0 = max(math.floor(fx) - r, 0), max(math.floor(fy) - r, 0)
    x1, y1 = min(math.floor(fx) + r + 1, v), min(math.floor(fy) + r + 1, v)
    if x0 >= x1 or y0 >= y1:
        return  # off screen
    xs, ys = np.arange(x0, x1) + 0.5 - fx, np.arange(y0, y1) + 0.5 - fy
    dist = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2)  # (h, w)
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0)[..., None]  # (h, w, 1)
    patch = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.rint(patch + alpha * (fill.astype(np.float32) - patch)).astype(np.uint8)


def _shape_mask(shape: str, size: int) -> np.ndarray:
    """A (size, size) bool mask of a landmark shape, evaluated at pixel centres."""
    c = (np.arange(size) + 0.5) - size / 2
    x, y = c[None, :], c[:, None]
    h = size / 2
    if shape == "square":
        m = (np.abs(x) <= h) & (np.abs(y) <= h)
    elif shape == "disc":
        m = x**2 + y**2 <= h**2
    elif shape == "ring":
        m = (x**2 + y**2 <= h**2) & (x**2 + y**2 >= (h - 2.5) ** 2)
    elif shape == "cross":
        t = max(1.0, size / 6)
        m = ((np.abs(x) <= t) & (np.abs(y) <= h)) | ((np.abs(y) <= t) & (np.abs(x) <= h))
    elif shape == "triangle":  # pointing up
        m = np.abs(x) <= (y + h) / 2
    elif shape == "diamond":
        m = np.abs(x) + np.abs(y) <= h
    else:
        raise ValueError(f"unknown landmark shape {shape!r}; known: {LANDMARK_SHAPES}")
    return np.broadcast_to(m, (size, size)).copy()


class ArenaEnv(gym.Env):
    """Top-down arena: ``Discrete(5)`` actions, (view, view, 3) uint8 frames, truth in ``info["state"]``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}
    action_spec = ARENA_ACTIONS

    def __init__(self, config: ArenaConfig | None = None, render_mode: str | None = "rgb_array", **overrides: Any):
        if config is None:
            config = ArenaConfig(**overrides)
        elif overrides:
            raise ValueError(f"ArenaEnv: pass a config or field overrides, not both ({sorted(overrides)})")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not supported; known: {self.metadata['render_modes']}")
        self.cfg, self.render_mode = config, render_mode
        v = config.view
        self.observation_space = gym.spaces.Box(0, 255, (v, v, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(ARENA_ACTIONS.n)
        self._agent_sprite = _disc_sprite(config.agent_radius, AGENT_FILL, AGENT_OUTLINE)
        self._ball_sprites = [_disc_sprite(config.ball_radius, BALL_COLORS[i % len(BALL_COLORS)]) for i in range(config.n_balls)]
        self._bg: np.ndarray | None = None  # (W + 2 view, W + 2 view, 3) uint8, padded with OUTSIDE
        self._frame: np.ndarray | None = None
        self._steps = 0

    # ---------------------------------------------------------------- layout
    def _make_background(self, rng: np.random.Generator) -> np.ndarray:
        cfg, W, pad = self.cfg, self.cfg.world_size, self.cfg.view
        self._landmarks: list[tuple[float, ...]] = []  # (cx, cy, half-size, r, g, b) world px, for info["state"]
        xs = np.arange(W, dtype=np.float64) + 0.5
        floor = np.empty((W, W, 3), np.float64)
        for ch in range(3):  # smooth field: a few low-frequency cosines, mapped into calm mid-range
            field = np.zeros((W, W))
            amps = rng.uniform(0.5, 1.0, size=4)
            for a in amps:
                kx, ky = rng.uniform(-2.5, 2.5, size=2) * 2 * math.pi / W
                phase = rng.uniform(0, 2 * math.pi)
                field += a * np.cos(kx * xs[None, :] + ky * xs[:, None] + phase)
            floor[..., ch] = rng.uniform(125, 165) + 35 * field / amps.sum()  # stays within ~[90, 200]
        if cfg.plain_floor:  # the field's random draws are made all the same, so the layout does not change
            floor[:] = floor.mean(axis=(0, 1))
        else:
            grid = np.arange(W) % 16 == 0
            floor[grid, :] *= 0.85  # faint grid lines every 16 px; rows, then columns
            floor[:, grid] *= 0.85
        bg = np.empty((W + 2 * pad, W + 2 * pad, 3), np.uint8)
        bg[:] = OUTSIDE
        world = bg[pad : pad + W, pad : pad + W]
        world[:] = np.clip(floor, 0, 255).astype(np.uint8)

        # Landmarks: distinct (shape, colour) decals at non-overlapping places inside the walls.
        placed: list[tuple[float, float, float]] = []
        colors = rng.permutation(len(LANDMARK_COLORS))
        for i in range(cfg.n_landmarks):
            size = int(rng.integers(8, 15))
            for _ in range(200):
                x0, y0 = rng.integers(WALL_PX + 2, W - WALL_PX - 2 - size, size=2)
                cx, cy = x0 + size / 2, y0 + size / 2
                if all((cx - px) ** 2 + (cy - py) ** 2 > (size / 2 + pr + 6) ** 2 for px, py, pr in placed):
                    break
            else:
                continue  # world too crowded for more decals
            placed.append((cx, cy, size / 2))
            mask = _shape_mask(LANDMARK_SHAPES[i % len(LANDMARK_SHAPES)], size)
            color = LANDMARK_COLORS[colors[i % len(colors)]]
            world[y0 : y0 + size, x0 : x0 + size][mask] = color
            self._landmarks.append((cx, cy, size / 2, *color))
        self._landmark_arr = np.array(self._landmarks, np.float32).reshape(-1, 6)  # built once per layout
        world[:WALL_PX], world[W - WALL_PX :] = OUTSIDE, OUTSIDE
        world[:, :WALL_PX], world[:, W - WALL_PX :] = OUTSIDE, OUTSIDE
        return bg

    def _free_spot(self, rng: np.random.Generator, radius: float, taken: list[tuple[float, float, float]]) -> tuple[float, float]:
        lo, hi = WALL_PX + radius + 1, self.cfg.world_size - WALL_PX - radius - 1
        for _ in range(1000):
            x, y = rng.uniform(lo, hi, size=2)
            if all((x - tx) ** 2 + (y - ty) ** 2 > (radius + tr + 2) ** 2 for tx, ty, tr in taken):
                taken.append((float(x), float(y), radius))
                return float(x), float(y)
        raise RuntimeError(f"ArenaEnv: no free spot for {self.cfg.n_balls} balls in a {self.cfg.world_size} px world")

    def _make_space(self, rng: np.random.Generator) -> None:
        cfg, W = self.cfg, float(self.cfg.world_size)
        space = pymunk.Space()
        space.gravity, space.damping = (0.0, 0.0), 1.0  # top-down, nothing slows down
        # Thick static walls whose inner surfaces are the edges of the walkable area (no tunnelling).
        t, lo, hi = 4.0, WALL_PX - 4.0, W - WALL_PX + 4.0
        for a, b in (((lo, lo), (hi, lo)), ((hi, lo), (hi, hi)), ((hi, hi), (lo, hi)), ((lo, hi), (lo, lo))):
            seg = pymunk.Segment(space.static_body, a, b, t)
            seg.elasticity, seg.friction = 1.0, 0.0
            space.add(seg)

        taken: list[tuple[float, float, float]] = []
        agent = pymunk.Body(5.0, pymunk.moment_for_circle(5.0, 0, cfg.agent_radius))
        agent.position = self._free_spot(rng, cfg.agent_radius, taken)
        self._agent = agent
        self._balls: list[pymunk.Body] = []
        for _ in range(cfg.n_balls):
            ball = pymunk.Body(1.0, pymunk.moment_for_circle(1.0, 0, cfg.ball_radius))
            ball.position = self._free_spot(rng, cfg.ball_radius, taken)
            speed, angle = rng.uniform(cfg.ball_speed_min, cfg.ball_speed_max), rng.uniform(0, 2 * math.pi)
            ball.velocity = (speed * math.cos(angle), speed * math.sin(angle))
            self._balls.append(ball)
        for body, r in [(agent, cfg.agent_radius)] + [(b, cfg.ball_radius) for b in self._balls]:
            shape = pymunk.Circle(body, r)
            shape.elasticity, shape.friction = 1.0, 0.0
            space.add(body, shape)
        self._space = space

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._bg = self._make_background(self.np_random)
        self._make_space(self.np_random)
        self._steps = 0
        self._update_camera()
        self._frame = self._render_frame()
        return self._frame, self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._bg is None:
            raise RuntimeError("ArenaEnv.step() called before reset()")
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}; expected an int in [0, {self.action_space.n}) {ARENA_ACTIONS.names}")
        cfg = self.cfg
        vx, vy = self._agent.velocity  # after the last physics step, so collisions carry over
        tx, ty = cfg.max_speed * _DIRS[int(action)]  # target velocity
        if cfg.control == "accel":
            a = cfg.accel
            self._agent.velocity = (vx + min(max(tx - vx, -a), a), vy + min(max(ty - vy, -a), a))
        else:
            k = 1.0 - cfg.inertia
            self._agent.velocity = (cfg.inertia * vx + k * tx, cfg.inertia * vy + k * ty)
        dt = 1.0 / cfg.physics_substeps
        for _ in range(cfg.physics_substeps):
            self._space.step(dt)
        for ball in self._balls:  # pushes can pump energy in; keep balls at learnable speeds
            speed = ball.velocity.length
            if speed > cfg.max_ball_speed:
                ball.velocity = ball.velocity * (cfg.max_ball_speed / speed)
        self._steps += 1
        self._update_camera()
        self._frame = self._render_frame()
        return self._frame, 0.0, False, self._steps >= cfg.max_steps, self._info()

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("ArenaEnv.render() called with render_mode=None; pass render_mode='rgb_array'")
            return None
        if self._frame is None:
            raise RuntimeError("ArenaEnv.render() called before reset()")
        return self._frame.copy()

    # ---------------------------------------------------------------- state
    def get_state(self) -> dict[str, Any]:
        """Ground truth: positions/velocities in px (and ``*_units``), camera, view positions."""
        if self._bg is None:
            raise RuntimeError("ArenaEnv.get_state() called before reset()")
        n = len(self._balls)
        agent_pos = np.array(self._agent.position, np.float32)  # (2,) x, y
        agent_vel = np.array(self._agent.velocity, np.float32)
        ball_pos = np.array([b.position for b in self._balls], np.float32).reshape(n, 2)  # (n, 2)
        ball_vel = np.array([b.velocity for b in self._balls], np.float32).reshape(n, 2)
        cam = self._camera.astype(np.float32)
        u = np.float32(PX_PER_UNIT)
        lm = self._landmark_arr  # (n_landmarks, 6)
        n_colors = len(BALL_COLORS)
        return {
            "agent_pos": agent_pos,
            "agent_vel": agent_vel,
            "agent_radius": np.float32(self.cfg.agent_radius),
            "ball_pos": ball_pos,
            "ball_vel": ball_vel,
            "ball_radius": np.full((n,), self.cfg.ball_radius, np.float32),
            "ball_color": np.array([BALL_COLORS[i % n_colors] for i in range(n)], np.float32).reshape(n, 3),
            "agent_color": np.array(AGENT_FILL, np.float32),
            # Landmarks never move; reported per step so that eval scores them like any object in view.
            "landmark_pos": lm[:, :2].copy(),
            "landmark_pos_view": lm[:, :2] - cam,
            "landmark_radius": lm[:, 2].copy(),
            "landmark_color": lm[:, 3:].copy(),
            "camera": self._camera.copy(),  # (2,) int32 top-left of the view, world px
            "agent_pos_view": agent_pos - cam,
            "ball_pos_view": ball_pos - cam,
            "agent_pos_units": agent_pos / u,
            "agent_vel_units": agent_vel / u,
            "ball_pos_units": ball_pos / u,
            "ball_vel_units": ball_vel / u,
            "px_per_unit": PX_PER_UNIT,
        }

    def place(
        self,
        agent_pos: tuple[float, float] | None = None,
        agent_vel: tuple[float, float] | None = None,
        ball_pos: np.ndarray | None = None,
        ball_vel: np.ndarray | None = None,
    ) -> np.ndarray:
        """Teleport bodies (for tests and probes), re-render; returns the new frame. Layout is kept."""
        if self._bg is None:
            raise RuntimeError("ArenaEnv.place() called before reset()")
        if agent_pos is not None:
            self._agent.position = tuple(map(float, agent_pos))
        if agent_vel is not None:
            self._agent.velocity = tuple(map(float, agent_vel))
        for i, ball in enumerate(self._balls):
            if ball_pos is not None:
                ball.position = tuple(map(float, ball_pos[i]))
            if ball_vel is not None:
                ball.velocity = tuple(map(float, ball_vel[i]))
        for body in [self._agent, *self._balls]:
            self._space.reindex_shapes_for_body(body)
        self._update_camera()
        self._frame = self._render_frame()
        return self._frame

    def _info(self) -> dict[str, Any]:
        return {"state": self.get_state(), "step": self._steps}

    # ---------------------------------------------------------------- rendering
    def _update_camera(self) -> None:
        s, v, W = self.cfg.camera_snap, self.cfg.view, self.cfg.world_size
        ax, ay = self._agent.position if self.cfg.follow else (W / 2, W / 2)
        cam = [s * math.floor((p - v / 2) / s + 0.5) for p in (ax, ay)]  # nearest multiple of s
        self._camera = np.clip(np.array(cam, np.int32), -v, W)  # (2,) stays inside the padded bg

    def _render_frame(self) -> np.ndarray:
        v = self.cfg.view
        cx, cy = int(self._camera[0]), int(self._camera[1])
        frame = self._bg[cy + v : cy + 2 * v, cx + v : cx + 2 * v].copy()  # (v, v, 3); bg is padded by v
        for body, (rgb, mask) in zip(self._balls, self._ball_sprites):
            if self.cfg.smooth_balls:
                _blend_disc(frame, rgb[0, 0], self.cfg.ball_radius, body.position, cx, cy)
            else:
                self._blit(frame, rgb, mask, body.position, cx, cy)
        self._blit(frame, *self._agent_sprite, self._agent.position, cx, cy)  # agent on top
        return frame

    @staticmethod
    def _blit(frame: np.ndarray, rgb: np.ndarray, mask: np.ndarray, pos: Any, cx: int, cy: int) -> None:
        """Draw a sprite centred on pixel floor(pos - camera), clipped to the frame."""
        r, v = mask.shape[0] // 2, frame.shape[0]
        px, py = math.floor(pos[0]) - cx, math.floor(pos[1]) - cy
        x0, y0, x1, y1 = max(px - r, 0), max(py - r, 0), min(px + r + 1, v), min(py + r + 1, v)
        if x0 >= x1 or y0 >= y1:
            return  # off screen
        sx, sy = x0 - (px - r), y0 - (py - r)
        m = mask[sy : sy + y1 - y0, sx : sx + x1 - x0, None]
        np.copyto(frame[y0:y1, x0:x1], rgb[sy : sy + y1 - y0, sx : sx + x1 - x0], where=m)
