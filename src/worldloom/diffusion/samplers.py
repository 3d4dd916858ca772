"""Samplers in the diffusers style: ``set_timesteps(n)`` then ``step(v, t_index, x)`` per step.

``EulerSampler`` integrates the flow ODE from t = ``t_max`` (1 = pure noise) to t = 0 with ``n``
Euler steps on a shifted grid. A few-step student uses the same interface with n = 1 or 2.
Starting below 1 (``t_max`` < 1) from a noised guess of the frame (e.g. the previous frame) skips
the noisiest levels, which a model trained with logit-normal t has seen least.
"""

from __future__ import annotations

import torch

from .schedules import shift_t


class EulerSampler:
    def __init__(self, steps: int = 4, shift: float = 1.0, t_max: float = 1.0) -> None:
        if not 0.0 < t_max <= 1.0:
            raise ValueError(f"sampler t_max must be in (0, 1], got {t_max}")
        self.shift, self.t_max = shift, t_max
        self.set_timesteps(steps)

    def set_timesteps(self, steps: int) -> None:
        if steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {steps}")
        self.steps = steps
        grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        self.timesteps = (shift_t(grid, self.shift) * self.t_max).float()  # (steps + 1,), from t_max down to 0

    def step(self, v: torch.Tensor, i: int, x: torch.Tensor) -> torch.Tensor:
        """Move ``x`` from timesteps[i] to timesteps[i + 1] along the predicted velocity ``v``."""
        dt = self.timesteps[i + 1] - self.timesteps[i]  # negative
        return x + dt.to(x.dtype) * v
