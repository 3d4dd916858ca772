"""Object colours drawn where the truth has none: false objects and haze, scored from ground truth.

- **false objects**: a frame has one when at least ``FALSE_PX`` of its pixels are clearly one of the
  objects' colours (within ``FALSE_TAU`` in RGB) farther than ``slack`` px from every true pixel of any
  object colour: a ball drawn where the truth has none, or left behind where it was;
- **haze**: the same, counting also floor pixels tinted ``HAZE_SHARE`` of the way towards an object's
  colour, in patches at least 3 px wide: the half-tone smear a ball or landmark leaves along the agent's
  path, too far from any object's colour to be a false object. The tint is measured against the model's
  own floor nearby (the difference to the truth, less its local median over ``HAZE_REACH`` cells of
  ``HAZE_CELL`` px), so a floor whose colour wash drifts over the rollout is not haze; a tint the
  floor-to-wall line explains better than the floor-to-object one (a blurred wall or grid line) is not
  either. On 60 validation rollouts (h1-32) of the shipped arena, seven of ten frames drawn at random from
  those the 15 % share adds showed a smear or a faint ghost, two a colour band by a wall; the tokenizer and
  the truth score 0 (docs/BENCHMARKS.md, tools/haze_frames.py draws them).
"""

from __future__ import annotations

import numpy as np

SLACK = 6  # px beyond an object's radius where its drawn copy is looked for (and beyond which a colour is false)
FALSE_TAU = 40.0  # RGB distance within which a pixel is clearly an object's colour (the floor stays > 45 away)
FALSE_PX = 16  # clearly-coloured pixels away from the truth that make a false object (a ball has ~80)
# Haze: a floor pixel tinted this share of the way to an object's colour, against the model's own floor
# nearby. Smears and ghosts in the arena's rollouts are 0.15-0.7 of the step; at 0.3 a light-blue ball
# drawn as a 20 px streak at 0.2-0.3 went uncounted (BENCHMARKS), and the truth and tokenizer score 0 at 0.15.
HAZE_SHARE = 0.15
HAZE_LINE = 0.3  # how far off the floor-to-colour line (in steps) a tint may lie: a blurred smear is not exact
HAZE_FLOOR = 50.0  # a true pixel this far (RGB) from its frame's floor colour is not floor
HAZE_CELL, HAZE_REACH = 4, 7  # px, cells: the model's local floor drift is the median over 28 px of 4 px cell means


def false_objects(frames: np.ndarray, truth: np.ndarray, colors: np.ndarray, slack: int = SLACK,
                  tau: float = FALSE_TAU, min_px: int = FALSE_PX) -> np.ndarray:
    """Frames (E, N, H, W, 3) with an object-coloured blob where the truth has none: (E, N) bool.

    ``colors`` (E, k, 3): the episode's object colours. A pixel within ``tau`` of any of them counts as
    false when no true pixel within ``tau`` of any of them lies within ``slack`` px (a box dilation of the
    truth): colours confused next to a true object are a matter for permanence, not a false object.
    """
    return _away_from_truth(frames, truth, colors, slack, tau, min_px)


def haze_objects(frames: np.ndarray, truth: np.ndarray, colors: np.ndarray, slack: int = SLACK,
                 tau: float = FALSE_TAU, min_px: int = FALSE_PX, share: float = HAZE_SHARE,
                 structure: np.ndarray | None = None) -> np.ndarray:
    """Frames (E, N, H, W, 3) with an object's colour smeared where the truth has none: (E, N) bool.

    As :func:`false_objects`, but a generated pixel counts when, where the truth shows floor, it has moved
    at least ``share`` of the floor-to-object colour step towards one of the object colours (and not past
    1.25 of it, nor farther than ``HAZE_LINE`` off that line), inside a 3x3 patch that all does: the
    half-tone smear a ball or landmark leaves along the agent's path, which is too far from its colour to be
    a false object. The move is the difference to the true pixel less the model's local drift (the median
    difference over the true floor within ``HAZE_REACH`` cells of ``HAZE_CELL`` px), so a floor wash drawn in
    a slightly different colour over a wide area is not haze. The floor is the true frame's median colour; a
    true pixel more than ``HAZE_FLOOR`` from it (a wall, a grid line, an object) is not floor, so a wall or
    grid line the model does not draw is not haze. With the world's ``structure`` colour (3,) (its walls), true
    wall pixels are never floor nor in its median (a frame that is mostly wall), and a move that the
    floor-to-wall line explains better than the floor-to-object line (a blurred wall edge, a grid line drawn
    a pixel off) is not haze. The true frames and the tokenizer score 0.
    """
    return _away_from_truth(frames, truth, colors, slack, tau, min_px, haze=share, structure=structure)


def _away_from_truth(frames: np.ndarray, truth: np.ndarray, colors: np.ndarray, slack: int, tau: float,
                     min_px: int, haze: float | None = None, structure: np.ndarray | None = None) -> np.ndarray:
    """(E, N) bool: at least ``min_px`` object-coloured (or, with a ``haze`` share, object-tinted) generated
    pixels lie farther than ``slack`` px from every true pixel of an object colour."""
    E, N, H, W, _ = frames.shape
    out = np.zeros((E, N), bool)
    for e in range(E):
        cols = np.unique(colors[e].astype(np.int32), axis=0)  # (k, 3)
        f, t = frames[e].astype(np.float32), truth[e].astype(np.float32)  # (N, H, W, 3)
        gen = coloured(f, cols, tau)
        if haze is not None:
            p = np.pad(haze_tint(f, t, cols, structure, tau) >= haze, ((0, 0), (1, 1), (1, 1)))
            # 3x3 erosion: a patch, not a lost 1 px grid line
            gen |= np.logical_and.reduce([p[:, dy : dy + H, dx : dx + W] for dy in range(3) for dx in range(3)])
        out[e] = (gen & ~dilate(coloured(t, cols, tau), slack)).sum((1, 2)) >= min_px
    return out


def coloured(f: np.ndarray, colors: np.ndarray, tau: float = FALSE_TAU) -> np.ndarray:
    """(N, H, W) bool: the pixels of frames ``f`` (N, H, W, 3) within ``tau`` RGB of one of ``colors`` (k, 3)."""
    f = f.astype(np.float32)
    out = np.zeros(f.shape[:3], bool)
    for c in np.asarray(colors, np.float32):
        out |= ((f - c) ** 2).sum(-1) < tau**2
    return out


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Box dilation of (N, H, W) bool masks by ``r`` px, via a 2-D prefix sum: True within r px of a True."""
    k = 2 * r + 1
    s = np.pad(mask.astype(np.int32), ((0, 0), (r + 1, r), (r + 1, r))).cumsum(1).cumsum(2)
    return (s[:, k:, k:] - s[:, :-k, k:] - s[:, k:, :-k] + s[:, :-k, :-k]) > 0


def haze_tint(f: np.ndarray, t: np.ndarray, colors: np.ndarray, structure: np.ndarray | None = None,
              tau: float = FALSE_TAU) -> np.ndarray:
    """How far each generated pixel of one episode (f, t: (N, H, W, 3)) is tinted towards an object colour
    (``colors`` (k, 3)), in shares of the floor-to-colour step: the largest share that passes
    :func:`haze_objects`' line and wall tests, 0 where none does or the truth is not floor: (N, H, W)."""
    f, t = f.astype(np.float32), t.astype(np.float32)
    floor, on_floor, wall_step = _floor(t, structure, tau)
    move = (f - t) - _local_drift(f - t, on_floor)  # (N, H, W, 3): what stands out of the model's floor
    wall_off = np.full(on_floor.shape, np.inf) if wall_step is None else _off_line(move, wall_step)[1]
    best = np.zeros(on_floor.shape, np.float32)
    for c in np.asarray(colors, np.float32):
        step = c - floor  # (N, 1, 1, 3): floor -> this colour
        proj, off = _off_line(move, step)  # 0 = as the truth, 1 = a whole step to c; squared RGB off the line
        ok = (proj <= 1.25) & (off <= HAZE_LINE**2 * np.maximum((step**2).sum(-1), 1.0)) & (off < wall_off) & on_floor
        best = np.maximum(best, np.where(ok, proj, 0.0))
    return best


def _floor(t: np.ndarray, structure: np.ndarray | None, tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """For haze, per true frame of one episode (t: (N, H, W, 3) float): the floor colour (N, 1, 1, 3), the
    floor pixels (N, H, W) and the floor-to-wall colour step (N, 1, 1, 3; None without a ``structure`` colour)."""
    N = t.shape[0]
    wall = np.zeros(t.shape[:3], bool) if structure is None else ((t - structure) ** 2).sum(-1) < tau**2
    floor = np.stack([np.median(t[i][~wall[i]] if (~wall[i]).any() else t[i].reshape(-1, 3), 0)
                      for i in range(N)])[:, None, None]  # (N, 1, 1, 3)
    on_floor = (((t - floor) ** 2).sum(-1) < HAZE_FLOOR**2) & ~wall
    return floor, on_floor, None if structure is None else structure - floor


def _off_line(move: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A colour move (N, H, W, 3) against the line along ``step`` (N, 1, 1, 3): how far along it (in steps) and
    the squared RGB distance off it, each (N, H, W)."""
    norm = np.maximum((step**2).sum(-1), 1.0)
    proj = (move * step).sum(-1) / norm
    return proj, ((move - proj[..., None] * step) ** 2).sum(-1)


def _local_drift(diff: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The model's local colour drift (N, H, W, 3): the median, over the ``HAZE_REACH`` x ``HAZE_REACH`` cells
    around each pixel's cell, of the mean ``diff`` (N, H, W, 3) over the ``mask`` pixels (N, H, W) of each
    ``HAZE_CELL`` px cell. Cells without mask pixels, and the frame's outside, take no part (0 where none do)."""
    N, H, W, _ = diff.shape
    c, p = HAZE_CELL, HAZE_REACH // 2
    Hc, Wc = -(-H // c), -(-W // c)
    d = np.zeros((N, Hc * c, Wc * c, 3), np.float32)
    m = np.zeros((N, Hc * c, Wc * c), np.float32)
    d[:, :H, :W], m[:, :H, :W] = diff * mask[..., None], mask
    n = m.reshape(N, Hc, c, Wc, c).sum((2, 4))  # (N, Hc, Wc) floor pixels per cell
    mean = d.reshape(N, Hc, c, Wc, c, 3).sum((2, 4)) / np.maximum(n, 1)[..., None]
    mean = np.where((n > 0)[..., None], mean, np.nan)
    win = np.lib.stride_tricks.sliding_window_view(np.pad(mean, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=np.nan),
                                                   (2 * p + 1, 2 * p + 1), axis=(1, 2))  # (N, Hc, Wc, 3, k, k)
    win = np.sort(win.reshape(*win.shape[:4], -1), -1)  # NaNs sort last
    k = (~np.isnan(win)).sum(-1)  # (N, Hc, Wc, 3) cells that take part
    lo = np.take_along_axis(win, np.maximum((k - 1) // 2, 0)[..., None], -1)[..., 0]
    hi = np.take_along_axis(win, np.maximum(k // 2, 0)[..., None], -1)[..., 0]
    med = np.where(k > 0, (lo + hi) / 2, 0.0)
    return np.repeat(np.repeat(med, c, 1), c, 2)[:, :H, :W]


__all__ = ["FALSE_PX", "FALSE_TAU", "HAZE_SHARE", "SLACK", "coloured", "dilate", "false_objects", "haze_objects", "haze_tint"]
