"""Frame metrics (PSNR, SSIM) per frame, and their aggregation per rollout horizon.

Key choices:

- **Per frame, never pooled.** Every metric maps uint8 frames (..., H, W, 3) to one value per frame
  (...), so callers can average over episodes at each horizon and see how quality decays with it.
- **PSNR on uint8 pixels, peak 255**, with the MSE clamped at 1e-3: an exact copy scores a finite
  78.1 dB instead of inf, so means and JSON stay finite.
- **SSIM in numpy, Gaussian window** (sigma 1.5, 11 taps, K1 = 0.01, K2 = 0.03, data range 255) as
  in Wang et al. 2004, over the 'valid' region (no padding: no made-up border pixels), on each RGB
  channel then averaged, or on the channel-mean grey image with ``gray=True``. Separable filtering,
  float32, so a few thousand 64x64 frames take about a second.
- **Horizon h is 1-based**: value index h-1 of a (B, N) array is the h-th generated frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

PEAK = 255.0
MIN_MSE = 1e-3
HORIZONS = (1, 8, 16, 32)


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"frames must have equal shapes (..., H, W, C), got {a.shape} and {b.shape}")
    return a, b


def mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared error per frame over the last 3 axes (H, W, C), in uint8 units: (...) float64."""
    a, b = _pair(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    return (d * d).mean(axis=(-3, -2, -1))


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB per frame of uint8 frames (..., H, W, 3) (peak 255; MSE clamped >= 1e-3: finite)."""
    return 10.0 * np.log10(PEAK**2 / np.maximum(mse(a, b), MIN_MSE))


def _gauss(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def _filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of x (N, H, W) by g along H and W: (N, H-k+1, W-k+1)."""
    k = len(g)
    x = np.lib.stride_tricks.sliding_window_view(x, k, axis=1) @ g  # (N, H-k+1, W)
    return np.lib.stride_tricks.sliding_window_view(x, k, axis=2) @ g  # (N, H-k+1, W-k+1)


def ssim(a: np.ndarray, b: np.ndarray, *, gray: bool = False, window: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Mean SSIM per frame of uint8 frames (..., H, W, C): (...) float64 in [-1, 1], 1 = identical.

    Per channel and averaged (default), or on the channel mean with ``gray=True``.
    """
    a, b = _pair(a, b)
    H, W, C = a.shape[-3:]
    if min(H, W) < window:
        raise ValueError(f"frames of {H}x{W} are smaller than the SSIM window {window}")
    lead = a.shape[:-3]
    x, y = a.astype(np.float32), b.astype(np.float32)
    if gray:
        x, y, C = x.mean(-1, keepdims=True), y.mean(-1, keepdims=True), 1
    # (..., H, W, C) -> (N*C, H, W): every channel of every frame is one image
    x = np.moveaxis(x.reshape(-1, H, W, C), -1, 1).reshape(-1, H, W)
    y = np.moveaxis(y.reshape(-1, H, W, C), -1, 1).reshape(-1, H, W)
    g = _gauss(window, sigma)
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    mx, my = _filter(x, g), _filter(y, g)
    # E[x^2] - E[x]^2 in float32 loses a little precision; fine at uint8 scale (errors < 1e-4 SSIM).
    sxx = _filter(x * x, g) - mx * mx
    syy = _filter(y * y, g) - my * my
    sxy = _filter(x * y, g) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    per_image = s.reshape(s.shape[0], -1).mean(1, dtype=np.float64)  # (N*C,)
    return per_image.reshape(-1, C).mean(1).reshape(lead)


# ------------------------------------------------------------------------------ per-horizon helpers
def per_horizon(values: np.ndarray) -> list[float]:
    """(B, N) per-episode values at horizons 1..N -> the N means over episodes (NaNs ignored)."""
    v = np.asarray(values, np.float64)
    if v.ndim != 2:
        raise ValueError(f"expected (episodes, horizon) values, got shape {v.shape}")
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(v).sum(0)
        sums = np.where(np.isfinite(v), v, 0.0).sum(0)
        return [float(s / c) if c else float("nan") for s, c in zip(sums, counts)]


def at_horizons(curve: Sequence[float], horizons: Iterable[int] = HORIZONS) -> dict[str, float]:
    """Values of a per-horizon curve at 1-based horizons, keyed by str(h); those beyond it are left out."""
    return {str(h): float(curve[h - 1]) for h in horizons if 1 <= h <= len(curve)}


def horizon_mean(curve: Sequence[float], upto: int | None = None) -> float:
    """Mean of a per-horizon curve over horizons 1..upto (all by default), NaNs ignored."""
    v = np.asarray(curve[:upto], np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


__all__ = ["HORIZONS", "at_horizons", "horizon_mean", "mse", "per_horizon", "psnr", "ssim"]
