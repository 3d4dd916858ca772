"""Dynamics task: the object-weighted loss puts its weight on what the last frame, moved, does not explain."""

import pytest
import torch

from worldloom.models.dit import CausalDiT, DynamicsConfig
from worldloom.shift import unexplained
from worldloom.training.cell_losses import object_weights
from worldloom.training.dynamics import DynamicsRecipe, DynamicsTask


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


def test_flow_pin_pulls_the_flow_to_the_scroll_where_the_scroll_explains_the_frame():
    """The pin is 0 for a flow that is the true whole-cell scroll and grows with the distance from it; a moving
    object's cells (not explained by the scroll) and the agent's square (left out of the vote) do not pull it.
    In a training step its gradient reaches the flow head, and a head that predicts no flow is refused."""
    from worldloom.shift import warp
    from worldloom.training.cell_losses import flow_pin_loss

    g = torch.Generator().manual_seed(0)
    prev = torch.randn(2, 4, 16, 16, generator=g)
    cur = warp(prev, torch.tensor([[1, 0], [0, -1]]))  # the camera moved one cell right / one cell up
    cur[:, :, 3, 3] += 3.0  # a ball that moved against the view
    cur[:, :, 6:10, 6:10] = prev[:, :, 6:10, 6:10]  # the agent, which the camera follows, stays put
    x0 = torch.stack([prev, cur], 1)  # (B, T, C, h, w)
    flow = torch.zeros(2, 2, 2, 16, 16)
    flow[0, 1, 0], flow[1, 1, 1] = 1.0, -1.0
    flow[:, 1, :, 3, 3] = 5.0  # whatever the ball's cell does is not the pin's business
    assert flow_pin_loss(flow, x0, 0.5, 2, ignore=2) < 0.02  # only the agent's unexplained border pulls
    off = flow.clone()
    off[0, 1, 0] = 0.8  # a fifth of a cell short of the scroll everywhere in the first clip
    assert flow_pin_loss(off, x0, 0.5, 2, ignore=2) > flow_pin_loss(flow, x0, 0.5, 2, ignore=2) + 0.04

    dit = CausalDiT(DynamicsConfig(latent_channels=4, dim=32, depth=1, heads=2, max_frames=4, pred="warp"))
    floor = torch.randn(1, 4, 16, 16, generator=g)
    lat = [torch.cat([warp(floor, torch.tensor([[i, 0]])) for i in range(6)])]  # (6, C, h, w): a steady scroll
    act = [torch.zeros(6, dtype=torch.long)]
    task = DynamicsTask(dit, lat, act, DynamicsRecipe(clip_len=3, loss="x0", flow_pin=1.0))
    loss, logs = task.loss(dit, task.batch(torch.Generator().manual_seed(1), 2, torch.device("cpu")), torch.Generator().manual_seed(2))
    loss.backward()
    assert logs["loss_flow_pin"] >= 0 and dit.out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="flow_pin"):
        DynamicsTask(CausalDiT(DynamicsConfig(latent_channels=4, dim=32, depth=1, heads=2, max_frames=4)), lat, act,
                     DynamicsRecipe(clip_len=3, flow_pin=1.0))
