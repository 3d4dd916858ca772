"""PSNR / SSIM per frame and the per-horizon helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldloom.eval.metrics import at_horizons, horizon_mean, mse, per_horizon, psnr, ssim

torch.set_num_threads(1)


def _frames(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_psnr_known_values_and_shape():
    a = np.full((2, 3, 8, 8, 3), 100, np.uint8)
    b = a + np.uint8(10)  # mse = 100 everywhere
    p = psnr(a, b)
    assert p.shape == (2, 3)
    np.testing.assert_allclose(p, 10 * np.log10(255**2 / 100))
    assert np.isfinite(psnr(a, a)).all() and psnr(a, a)[0, 0] == pytest.approx(10 * np.log10(255**2 / 1e-3))
    # no uint8 wrap-around: 0 vs 255 is the worst case, 0 dB
    assert psnr(np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)) == pytest.approx(0.0)
    assert mse(a, b).shape == (2, 3)
    with pytest.raises(ValueError, match="equal shapes"):
        psnr(a, b[:, :2])


def _ssim_reference(x: np.ndarray, y: np.ndarray, k: int = 11, sigma: float = 1.5) -> float:
    """Direct 2-D windowed SSIM of one grey image, valid region (slow, for checking)."""
    r = np.arange(k) - (k - 1) / 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - k + 1):
        for j in range(x.shape[1] - k + 1):
            wx, wy = x[i : i + k, j : j + k], y[i : i + k, j : j + k]
            mx, my = (g * wx).sum(), (g * wy).sum()
            sxx, syy = (g * (wx - mx) ** 2).sum(), (g * (wy - my) ** 2).sum()
            sxy = (g * (wx - mx) * (wy - my)).sum()
            vals.append(((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_reference_and_behaves():
    a = _frames((2, 20, 20, 3))
    noise = np.random.default_rng(1).integers(-40, 41, a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    s = ssim(a, b)
    assert s.shape == (2,)
    ref = np.mean([_ssim_reference(a[0, ..., c].astype(float), b[0, ..., c].astype(float)) for c in range(3)])
    assert s[0] == pytest.approx(ref, abs=1e-4)
    ref_gray = _ssim_reference(a[1].astype(float).mean(-1), b[1].astype(float).mean(-1))
    assert ssim(a, b, gray=True)[1] == pytest.approx(ref_gray, abs=1e-4)
    np.testing.assert_allclose(ssim(a, a), 1.0, atol=1e-6)
    np.testing.assert_allclose(ssim(a, b), ssim(b, a), atol=1e-6)  # symmetric
    worse = np.clip(a.astype(int) + 3 * noise, 0, 255).astype(np.uint8)
    assert (ssim(a, worse) < s).all() and (s < 1).all()
    with pytest.raises(ValueError, match="window"):
        ssim(a[:, :8, :8], b[:, :8, :8])


def test_per_horizon_helpers():
    v = np.array([[1.0, 2.0, 3.0], [3.0, np.nan, 5.0]])  # (episodes, horizon)
    curve = per_horizon(v)
    assert curve == [2.0, 2.0, 4.0]  # NaN ignored
    assert at_horizons(curve, (1, 3, 8)) == {"1": 2.0, "3": 4.0}  # beyond the curve: left out
    assert horizon_mean(curve) == pytest.approx(8 / 3) and horizon_mean(curve, 2) == 2.0
    assert np.isnan(per_horizon(np.full((2, 1), np.nan))[0])
    with pytest.raises(ValueError, match="episodes, horizon"):
        per_horizon(np.zeros(3))
