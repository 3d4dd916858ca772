"""Fitting a rendered frame into worldloom's square uint8 frames: pad, crop or stretch.

``pad`` (the default) scales the long side to the square and letterboxes with black, so nothing is lost
and round things stay round; ``crop`` cuts the largest centred square (Pong's 1-2 px ball keeps the
most pixels); ``stretch`` squeezes the whole frame (how frames were fitted before the fit was
recorded). PIL's BOX filter when shrinking (an area average, no aliasing), bilinear when growing: no
OpenCV or torchvision. Used by the ``gym:`` wrapper (:mod:`.gym`), the LeRobot importer and the Atari
object geometry.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

Fit = Literal["pad", "crop", "stretch"]
FITS: tuple[str, ...] = ("pad", "crop", "stretch")
DEFAULT_FIT: Fit = "pad"


def resize_frame(frame: np.ndarray, size: int, *, fit: str = DEFAULT_FIT, center_crop: bool = False) -> np.ndarray:
    """An RGB frame as uint8 ``(size, size, 3)``.

    Grey (H, W) or (H, W, 1) frames are repeated to 3 channels and alpha is dropped. ``fit``:
    ``"pad"`` scales the long side to ``size`` and centres the frame on black (aspect kept, nothing
    lost); ``"crop"`` cuts the largest centred square first (aspect kept, edges lost); ``"stretch"``
    squeezes the whole frame. ``center_crop=True`` means ``fit="crop"`` (older callers). BOX filter
    when shrinking, bilinear when growing.
    """
    if center_crop:
        fit = "crop"
    if fit not in FITS:
        raise ValueError(f"fit must be one of {list(FITS)}, got {fit!r}")
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
    if fit == "crop" and h != w:
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        a = a[y0 : y0 + s, x0 : x0 + s]
        h = w = s
    if fit == "pad" and h != w:
        # Long side -> size; the short side rounds to the nearest pixel (never 0).
        nh, nw = (size, max(1, round(w * size / h))) if h > w else (max(1, round(h * size / w)), size)
        out = np.zeros((size, size, 3), np.uint8)
        y0, x0 = (size - nh) // 2, (size - nw) // 2
        out[y0 : y0 + nh, x0 : x0 + nw] = _resize(a, nh, nw)
        return out
    if (h, w) == (size, size):
        return np.ascontiguousarray(a)
    return _resize(a, size, size)


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    if a.shape[:2] == (h, w):
        return np.ascontiguousarray(a)
    shrink = h <= a.shape[0] and w <= a.shape[1]
    resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((w, h), resample=resample))


__all__ = ["DEFAULT_FIT", "FITS", "Fit", "resize_frame"]
