"""Whole-cell shift matching (worldloom.shift.best_cell_shift): the batched search against its definition."""

import pytest
import torch

from worldloom.shift import best_cell_shift, cell_shift


def reference(prev: torch.Tensor, cur: torch.Tensor, m: int, ignore: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One shift at a time: the mean square difference over the overlap outside the central square, +1e-4 per
    cell^2 of shift; the first of equal costs in (dy, dx) order; the residual map at the chosen shift."""
    N, _, h, w = prev.shape
    best = [(float("inf"), None, None)] * N
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            for n in range(N):
                r = torch.zeros(h, w)
                vote = n_vote = 0.0
                for y in range(h):
                    for x in range(w):
                        if 0 <= y + dy < h and 0 <= x + dx < w:
                            r[y, x] = (cur[n, :, y, x] - prev[n, :, y + dy, x + dx]).pow(2).mean()
                            if not (abs(y - h / 2 + 0.5) < ignore and abs(x - w / 2 + 0.5) < ignore):
                                vote += float(r[y, x])
                                n_vote += 1
                cost = vote / n_vote + 1e-4 * (dx * dx + dy * dy)
                if cost < best[n][0]:
                    best[n] = (cost, (dx, dy), r)
    return torch.tensor([b[1] for b in best]), torch.stack([b[2] for b in best])


@pytest.mark.parametrize("kind", ["noise", "shifted", "flat"])
@pytest.mark.parametrize("m,ignore", [(1, 0), (2, 1)])
def test_best_cell_shift_is_its_definition(kind, m, ignore):
    g = torch.Generator().manual_seed(hash((kind, m, ignore)) % 1000)
    prev = torch.randn(2, 3, 6, 6, generator=g)
    cur = {"noise": torch.randn(2, 3, 6, 6, generator=g), "shifted": torch.roll(prev, (1, -1), (2, 3)),
           "flat": torch.zeros(2, 3, 6, 6)}[kind]
    if kind == "flat":
        prev = torch.zeros_like(prev)
    shift, res = best_cell_shift(prev, cur, m, ignore)
    want_shift, want_res = reference(prev, cur, m, ignore)
    assert torch.equal(shift, want_shift) and torch.allclose(res, want_res, atol=1e-5)
    if kind == "shifted":  # content moved down 1, left 1: the camera moved up 1, right 1
        assert cell_shift(prev, cur, m).tolist() == [[1, -1], [1, -1]]
    if kind == "flat":
        assert shift.abs().sum() == 0  # a flat pair reads no motion
