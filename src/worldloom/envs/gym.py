"""Any Gymnasium env with discrete actions, seen through its rendered frames (env id ``"gym:<id>"``).

:func:`make_gym_env` wraps ``gymnasium.make(id, render_mode="rgb_array")`` so that it looks like
worldloom's own envs: the observation is the env's ``render()`` frame resized to a square uint8
``(frame_size, frame_size, 3)``, the actions are ``Discrete(n)`` described by
``ActionSpec.discrete(n)`` (on ``env.unwrapped.action_spec``), and ``render()`` returns the same
frame. There is no ground-truth ``info["state"]``: a generic env's internal state has no agreed
meaning, so physics/persistence metrics do not apply to it.

Design choices:

- The wrapper is a ``gymnasium.Env`` holding the inner env, not a ``gymnasium.Wrapper``, so that
  ``env.unwrapped`` is the wrapper and ``env.unwrapped.action_spec`` works as for built-in envs.
- The whole frame is resized (aspect ratio not kept), not cropped: in e.g. CartPole the cart can be
  anywhere across the wide frame, and a crop would lose it. PIL BOX filter when shrinking (an area
  average, no aliasing), bilinear when growing; no OpenCV/torchvision dependency.
- Classic-control and toy-text envs draw with pygame; rendering to an array needs no window, so the
  SDL video/audio drivers default to "dummy" (headless machines, CI).
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from PIL import Image

from worldloom.actions import ActionSpec

GYM_PREFIX = "gym:"


def resize_frame(frame: np.ndarray, size: int, *, center_crop: bool = False) -> np.ndarray:
    """An RGB frame as uint8 ``(size, size, 3)``.

    Grey (H, W) or (H, W, 1) frames are repeated to 3 channels and alpha is dropped. With
    ``center_crop`` the largest centred square is cut out first (keeps the aspect ratio); otherwise
    the whole frame is squeezed. BOX filter when shrinking, bilinear when growing.
    """
    a = np.asarray(frame)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W[, 1|3|4]) image, got shape {a.shape}")
    if a.dtype != np.uint8:
        # Float renders are taken to be in [0, 1] if they look like it, else [0, 255].
        if np.issubdtype(a.dtype, np.floating) and a.size and float(np.nanmax(a)) <= 1.0:
            a = a * 255.0
        a = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    a = a[:, :, :3]
    h, w = a.shape[:2]
    if center_crop and h != w:
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        a = a[y0 : y0 + s, x0 : x0 + s]
        h = w = s
    if (h, w) == (size, size):
        return np.ascontiguousarray(a)
    resample = Image.Resampling.BOX if size <= min(h, w) else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((size, size), resample=resample))


class GymFrameEnv(gymnasium.Env):
    """A Gymnasium env with discrete actions whose observation is its resized rendered frame."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, inner: gymnasium.Env, frame_size: int = 64, env_id: str = "") -> None:
        if frame_size < 1:
            raise ValueError(f"frame_size must be >= 1, got {frame_size}")
        name = env_id or str(getattr(inner.spec, "id", type(inner).__name__))
        space = inner.action_space
        if not isinstance(space, spaces.Discrete):
            raise ValueError(
                f"gym:{name}: action space {space} is not Discrete; worldloom supports discrete actions only "
                "(wrap continuous/multi-discrete controls into a Discrete env first)"
            )
        if inner.render_mode != "rgb_array":
            raise ValueError(f"gym:{name}: cannot render to an array (render_mode={inner.render_mode!r})")
        self.inner = inner
        self.env_id = name
        self.frame_size = int(frame_size)
        self._start = int(space.start)  # Discrete(n, start): our ids are 0..n-1
        n = int(space.n)
        self.action_space = spaces.Discrete(n)
        self.observation_space = spaces.Box(0, 255, (self.frame_size, self.frame_size, 3), dtype=np.uint8)
        self.action_spec = ActionSpec.discrete(n)
        self.render_mode = "rgb_array"
        self.metadata = {
            "render_modes": ["rgb_array"],
            "render_fps": inner.metadata.get("render_fps", 15),
        }
        self._frame: np.ndarray | None = None

    def _observe(self) -> np.ndarray:
        frame = self.inner.render()
        if frame is None:
            raise RuntimeError(f"gym:{self.env_id}: render() returned None")
        self._frame = resize_frame(np.asarray(frame), self.frame_size)
        return self._frame.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        _, info = self.inner.reset(seed=seed, options=options)
        return self._observe(), dict(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = int(action)
        if not 0 <= a < self.action_space.n:
            raise ValueError(f"gym:{self.env_id}: action {action!r} outside 0..{self.action_space.n - 1}")
        _, reward, terminated, truncated, info = self.inner.step(self._start + a)
        return self._observe(), float(reward), bool(terminated), bool(truncated), dict(info)

    def render(self) -> np.ndarray | None:
        return None if self._frame is None else self._frame.copy()

    def close(self) -> None:
        self.inner.close()


def make_gym_env(env_id: str, frame_size: int = 64, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make(env_id, render_mode="rgb_array", **kwargs)`` seen as frames.

    ``env_id`` is a Gymnasium id (``"CartPole-v1"``); a leading ``"gym:"`` is accepted and stripped.
    Raises ``ValueError`` for an unknown id or a non-discrete action space.
    """
    if env_id.startswith(GYM_PREFIX):
        env_id = env_id[len(GYM_PREFIX) :]
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        inner = gymnasium.make(env_id, render_mode="rgb_array", **kwargs)
    except gymnasium.error.Error as e:  # unknown id, bad version, missing extra …
        raise ValueError(f"gym:{env_id}: {e}") from None
    try:
        return GymFrameEnv(inner, frame_size=frame_size, env_id=env_id)
    except BaseException:
        inner.close()
        raise


__all__ = ["GYM_PREFIX", "GymFrameEnv", "make_gym_env", "resize_frame"]
