"""Ghosts (training/ghosts.py): the cells where a placed memory frame shows an object that has since moved."""

import numpy as np
import pytest
import torch

from worldloom.memory import Geometry
from worldloom.models.dit import MemoryFrames
from worldloom.training.ghosts import GhostMarks, ghost_cells, ghost_marks, object_cells, weigh_last
from worldloom.training.memory import MemorySampler

GEOM = Geometry(frame_size=64, latent_size=16, grid=8)


def balls(pos: list[list[tuple[float, float]]], radius: float = 5.0) -> dict[str, np.ndarray]:
    """A state with balls at view positions ``pos`` [frame][ball] px."""
    p = np.array(pos, np.float64)  # (T, n, 2)
    T, n = p.shape[:2]
    return {"ball_pos_view": p, "ball_radius": np.full((T, n), radius), "ball_color": np.full((T, n, 3), 200.0)}


def test_object_cells_are_the_cells_a_disc_reaches():
    # 64 px frames, 16 cells of 4 px: a ball of radius 5 at (8, 8) reaches cells 0-3 on each axis (4 px away),
    # but not the corner cells (0, 0), (0, 3), (3, 0), (3, 3), whose nearest point is 4*sqrt(2) > 5 away
    c = object_cells(balls([[(8.0, 8.0)], [(np.nan, np.nan)], [(-40.0, 30.0)]]), "ball", 3, 64, 16)
    assert c.shape == (3, 16, 16) and c.dtype == torch.bool
    want = torch.zeros(16, 16, dtype=torch.bool)
    want[0:4, 0:4] = True
    want[0, 0] = want[0, 3] = want[3, 0] = want[3, 3] = False
    assert torch.equal(c[0], want)
    assert not c[1].any() and not c[2].any()  # out of the world, out of the view: nothing
    with pytest.raises(ValueError, match=r"ep 3.*'landmark'"):
        object_cells(balls([[(10.0, 10.0)]]), "landmark", 1, 64, 16, "ep 3")
    with pytest.raises(ValueError, match="2 steps for 3 frames"):
        object_cells(balls([[(10.0, 10.0)], [(10.0, 10.0)]]), "ball", 3, 64, 16)


def test_a_ghost_is_where_the_placed_memory_shows_the_object_and_the_target_does_not():
    cells = torch.zeros(2, 16, 16, dtype=torch.bool)
    cells[0, 4:6, 4:6] = True  # the memory frame: the ball at rows/cols 4-5 of its own view
    cells[1, 10:12, 10:12] = True  # the last target: it has rolled to 10-11
    marks = ghost_marks([cells], [(0, 0)], torch.tensor([[0, -1]]), 2)
    assert torch.equal(marks.target[0], cells[1]) and torch.equal(marks.memory[0, 0], cells[0]) and not marks.memory[0, 1].any()
    offset = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]], dtype=torch.float64)  # one token (4 cells) to the right
    g = ghost_cells(marks, offset, torch.tensor([[True, False]]), 4)[0]
    want = torch.zeros(16, 16, dtype=torch.bool)
    want[3:7, 7:11] = True  # rows 4-5, columns 8-9 once placed, grown by a cell
    want[10:12, 10:12] = False  # the target's ball stays out
    assert torch.equal(g, want)
    none = ghost_cells(marks, offset, torch.tensor([[False, False]]), 4)
    assert not none.any()  # no valid slot, no ghost


def test_weigh_last_sets_only_cells_no_rule_set_before():
    x0 = torch.zeros(1, 3, 4, 8, 8)
    cells = torch.zeros(1, 8, 8, dtype=torch.bool)
    cells[0, :2] = True
    w = weigh_last(None, cells, 20.0, x0)
    assert w.shape == (1, 3, 8, 8) and (w[0, :2] == 1).all() and (w[0, -1, :2] == 20).all() and (w[0, -1, 2:] == 1).all()
    prior = torch.ones(1, 3, 8, 8)
    prior[0, -1, 0] = 0.0  # an erased cell memory does not cover stays left out
    w2 = weigh_last(prior, cells, 20.0, x0)
    assert (w2[0, -1, 0] == 0).all() and (w2[0, -1, 1] == 20).all()


def test_the_sampler_names_the_frames_it_drew():
    T = 40
    z = torch.arange(T, dtype=torch.float32)[:, None, None, None].expand(T, 4, 16, 16).clone()  # frame i holds i
    cam = torch.stack([torch.tensor([4.0 * min(i, T - i) for i in range(T)]), torch.zeros(T)], 1)
    ms = MemorySampler("place", [z], GEOM, frames=2, window=8, poses=[cam], drop=0.3)
    mem, index = ms.draw([(0, s) for s in range(16, 30)], 8, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(index >= 0, mem.valid)
    held = mem.z[..., 0, 0, 0]  # (B, M)
    assert torch.equal(held[mem.valid], index[mem.valid].float())


def test_ghost_cells_weigh_in_the_loss_and_need_memory(memory_episode):
    from worldloom.training.dynamics import DynamicsRecipe, DynamicsTask

    T, z, dit, acts, ms = memory_episode.T, memory_episode.z, memory_episode.dit, memory_episode.acts, memory_episode.memory
    cells = torch.zeros(T, 16, 16, dtype=torch.bool)
    cells[1::2, 6:9, 6:9] = True  # a ball that comes and goes: some memory frames show it, some targets do not
    losses = []
    for w in (1.0, 20.0):
        task = DynamicsTask(dit, [z], [acts], DynamicsRecipe(clip_len=8, memory="place", memory_drop=0.0, memory_ghost_weight=w),
                            memory=ms, ghosts=[cells] if w != 1 else None)
        batch = task.batch(torch.Generator().manual_seed(0), 8, torch.device("cpu"))
        assert isinstance(batch[-1], GhostMarks) == (w != 1) and isinstance(batch[2], MemoryFrames)
        losses.append(task.loss(dit, batch, torch.Generator().manual_seed(1))[0].detach().item())
    assert losses[0] != losses[1]
    with pytest.raises(ValueError, match="memory_ghost_weight"):
        DynamicsTask(dit, [z], [acts], DynamicsRecipe(clip_len=8, memory_ghost_weight=20.0), ghosts=[cells])  # no memory
    with pytest.raises(ValueError, match="memory_ghost_weight"):
        DynamicsTask(dit, [z], [acts], DynamicsRecipe(clip_len=8, memory="place", memory_ghost_weight=20.0), memory=ms)
