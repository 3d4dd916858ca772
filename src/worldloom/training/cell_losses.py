"""Per-cell loss terms of dynamics training that look at how a clip's clean latents move (training/dynamics.py).

- :func:`object_weights`: extra weight on latent cells that the previous frame, moved by its best
  whole-cell shift, does not explain (objects moving against the view), which whole-frame MSE lets the
  scrolling floor drown (``DynamicsRecipe.object_weight``; distill's too).
- :func:`flow_pin_loss`: pulls a 'warp' head's flow to that whole-cell shift where it explains the frame
  (``DynamicsRecipe.flow_pin``): on 60 validation layouts it kept landmarks 7-10 points longer
  (docs/BENCHMARKS.md, "Objects", eighteenth session).
"""

from __future__ import annotations

import torch


def object_weights(x0: torch.Tensor, weight: float, tau: float, max_shift: int) -> torch.Tensor:
    """Loss weights (B, T, h, w) for clean latents x0 (B, T, C, h, w): 1, plus up to ``weight`` on cells the
    previous frame moved by its best whole-cell shift does not explain (:func:`worldloom.shift.unexplained`).

    The first frame of a clip has no previous frame and weighs 1 everywhere.
    """
    from ..shift import unexplained

    B, T, C, h, w = x0.shape
    out = torch.ones((B, T, h, w), device=x0.device)
    if T > 1:
        res = unexplained(x0[:, :-1].reshape(-1, C, h, w), x0[:, 1:].reshape(-1, C, h, w), max_shift)
        out[:, 1:] += weight * (res / tau).clamp(max=1.0).reshape(B, T - 1, h, w)
    return out


def flow_pin_loss(flow: torch.Tensor, x0: torch.Tensor, tau: float, max_shift: int, ignore: int = 0) -> torch.Tensor:
    """Mean L1 distance of a 'warp' head's flow (B, T, 2, h, w) from the whole-cell shift that explains each clean
    latent frame of x0 (B, T, C, h, w) by the one before it, over the cells that shift explains (residual < tau);
    ``ignore`` as :func:`worldloom.shift.cell_shift`'s.

    Why: the x0 loss barely feels a fifth of a cell of shift over a smooth floor, so the flow settles between
    cells on moving steps, and each bilinear blend blurs what the previous frame carried (layers.snap_flow).
    """
    from ..shift import best_cell_shift

    B, T, C, h, w = x0.shape
    prev, cur = x0[:, :-1].reshape(-1, C, h, w).float(), x0[:, 1:].reshape(-1, C, h, w).float()
    shift, res = best_cell_shift(prev, cur, max_shift, ignore)
    target = shift.view(B, T - 1, 2, 1, 1).to(flow.dtype)  # (dx, dy) cells, flow_warp's convention
    keep = (res.view(B, T - 1, 1, h, w) < tau).to(flow.dtype)  # (B, T - 1, 1, h, w)
    return ((flow[:, 1:] - target).abs() * keep).sum() / (2 * keep.sum()).clamp_min(1.0)
