"""Dynamics task: the object-weighted loss puts its weight on what the last frame, moved, does not explain."""

import pytest
import torch

from worldloom.models.dit import CausalDiT, DynamicsConfig
from worldloom.shift import unexplained
from worldloom.training.dynamics import DynamicsRecipe, DynamicsTask, object_weights


def test_unexplained_is_zero_for_a_scroll_and_marks_a_moving_object():
    g = torch.Generator().manual_seed(0)
    prev = torch.randn(1, 4, 16, 16, generator=g)
    cur = torch.roll(prev, shifts=(0, -1), dims=(2, 3))  # the view scrolled one cell: cur[y, x] = prev[y, x + 1]
    res = unexplained(prev, cur, max_shift=2)
    assert res[0, :, :15].abs().max() < 1e-6  # all explained by the shift
    assert (res[0, :, 15] == 0).all()  # the column that scrolled in is nobody's residual
    cur2 = cur.clone()
    cur2[0, :, 5, 5] += 3.0  # an object moved against the view
    res2 = unexplained(prev, cur2, max_shift=2)
    assert res2[0, 5, 5] > 1.0 and res2[0].sum() == pytest.approx(float(res2[0, 5, 5]))


def test_object_weights_and_loss():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 3, 4, 16, 16, generator=g)
    x0[:, 1] = x0[:, 0]
    x0[:, 2] = x0[:, 1]
    x0[:, 2, :, 3, 4] += 2.0
    w = object_weights(x0, weight=10.0, tau=0.5, max_shift=2)
    assert (w[:, 0] == 1).all() and (w[:, 1] == 1).all()  # no previous frame; a still frame
    assert torch.allclose(w[:, 2, 3, 4], torch.full((2,), 11.0)) and (w[:, 2].sum((1, 2)) == 256 + 10).all()

    dit = CausalDiT(DynamicsConfig(latent_channels=4, dim=32, depth=1, heads=2, max_frames=4))
    lat = [torch.randn(6, 4, 16, 16, generator=g)]
    act = [torch.zeros(6, dtype=torch.long)]
    for ow in (0.0, 5.0):
        task = DynamicsTask(dit, lat, act, DynamicsRecipe(clip_len=3, loss="x0", object_weight=ow))
        loss, logs = task.loss(dit, task.batch(torch.Generator().manual_seed(1), 2, torch.device("cpu")),
                               torch.Generator().manual_seed(2))
        loss.backward()
        assert torch.isfinite(loss) and ("loss_objects" in logs) == (ow > 0)
    with pytest.raises(ValueError, match="object_weight"):
        DynamicsTask(dit, lat, act, DynamicsRecipe(clip_len=3, object_weight=-1.0))
