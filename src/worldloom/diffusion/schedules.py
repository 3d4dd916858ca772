"""Flow matching (rectified flow): x_t = (1 - t) x0 + t eps, the network predicts v = eps - x0.

Noise levels are per frame (diffusion forcing): every frame of a clip gets its own t. Training t
comes from a logit-normal distribution shifted towards high noise (``shift`` > 1), which spends the
model's capacity where few-step sampling needs it: the first, most uncertain denoising steps.
"""

from __future__ import annotations

import torch


def add_noise(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x0, eps (B, T, C, h, w); t (B, T) -> x_t."""
    t = t[..., None, None, None].to(x0.dtype)
    return (1 - t) * x0 + t * eps


def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return eps - x0


def shift_t(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Time shift t' = s t / (1 + (s - 1) t): s > 1 moves mass towards t = 1 (more noise)."""
    return shift * t / (1 + (shift - 1) * t)


def sample_train_t(shape: tuple[int, ...], shift: float = 1.0, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """Per-frame training noise levels in (0, 1): logit-normal(0, 1), then ``shift``."""
    u = torch.randn(shape, generator=generator, device=device).sigmoid()
    return shift_t(u, shift)


def x0_from_v(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Clean estimate from a velocity prediction: x0 = x_t - t v."""
    return x_t - t * v
