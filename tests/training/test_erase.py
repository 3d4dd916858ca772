"""Objects painted out of training frames (training/erase.py) and the memory_erase clips the loss sees."""

import dataclasses

import numpy as np
import pytest
import torch

from worldloom.models.mem_copy import align
from worldloom.training.erase import ErasedClips, cell_masks, erase_clips, erase_episode, erase_frame


def floor(H: int = 64) -> np.ndarray:
    """A smooth floor (H, H, 3) uint8 with a grid line every 16 px, as the arena draws one."""
    yy, xx = np.mgrid[0:H, 0:H].astype(np.float64)
    f = np.stack([120 + 0.8 * xx, 140 + 0.5 * yy, 150 - 0.3 * xx + 0.2 * yy], -1)
    f[::16] *= 0.85
    f[:, ::16] *= 0.85
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def disc(img: np.ndarray, cx: float, cy: float, r: float, color: tuple[int, int, int]) -> np.ndarray:
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    m = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) <= r
    img[m] = color
    return m


def test_a_decal_is_painted_out_to_the_floor_and_a_ball_over_it_stays():
    truth = floor()
    img = truth.copy()
    mark = disc(img, 30.0, 26.0, 6.0, (95, 25, 90))
    ball = disc(img, 36.0, 26.0, 3.0, (230, 40, 40))  # a ball lying over the decal's edge
    out, mask = erase_frame(img, np.array([[30.0, 26.0]]), np.array([6.0]), np.array([[95, 25, 90]]),
                            avoid=np.array([[36.0, 26.0, 3.0]]))
    gone = mark & ~ball
    assert mask.sum() == gone.sum() and (mask == gone).all()
    err = np.abs(out[gone].astype(int) - truth[gone].astype(int)).max(-1)
    assert np.median(err) <= 3 and err.max() <= 30  # the floor's plane; a crossed grid line is not redrawn
    assert (out[ball] == img[ball]).all() and (out[~mask] == img[~mask]).all()


def test_an_episode_is_erased_frame_by_frame_and_a_missing_kind_is_named():
    T = 3
    frames = np.stack([floor()] * T)
    pos = np.array([[[10.0 + 8 * t, 20.0]] for t in range(T)])  # (T, 1, 2): it scrolls
    for t in range(T):
        disc(frames[t], *pos[t, 0], 5.0, (0, 150, 150))
    state = {"landmark_pos_view": pos, "landmark_radius": np.full((T, 1), 5.0),
             "landmark_color": np.tile(np.array([[0, 150, 150]]), (T, 1, 1))}
    out, masks = erase_episode(frames, state, "landmark")
    assert masks.any(axis=(1, 2)).all()
    assert not (np.abs(out.astype(int) - [0, 150, 150]).max(-1) < 24).any()  # no teal pixel left
    cells = cell_masks(masks, 16)
    assert cells.shape == (T, 16, 16) and bool(cells[0, 5, 2]) and not bool(cells[0, 0, 10])
    with pytest.raises(ValueError, match=r"ep 7.*'ball'.*landmark"):
        erase_episode(frames, state, "ball", "ep 7")


def test_erased_clips_keep_the_last_target_and_leave_out_what_memory_does_not_cover():
    B, T, C = 64, 8, 4
    x0 = torch.randn(B, T, C, 16, 16)
    ez = x0 + 10.0  # the erased latents, told apart by value
    cells = torch.zeros(B, T, 16, 16, dtype=torch.bool)
    cells[:, :, 2:4, 2:4] = True  # an object at the top left in every frame ...
    cells[:, :, 12:14, 12:14] = True  # ... and one at the bottom right
    valid = torch.ones(B, 1, dtype=torch.bool)
    offset = torch.zeros(B, 1, 2, dtype=torch.float64)
    offset[:, 0, 1] = 2.0  # the memory frame sits 2 tokens (8 cells) to the right: it covers columns 8-15 only
    from worldloom.models.dit import MemoryFrames

    mem = MemoryFrames(torch.zeros(B, 1, C, 16, 16), torch.zeros(B, 1), torch.zeros(B, 1), offset, valid)
    _, cover = align(mem.z, mem.offset, mem.valid, 4)
    out, w, share = erase_clips(x0, ErasedClips(ez, cells), cover, 0.5, torch.Generator().manual_seed(0), 5.0)
    changed = (out[:, 0] != x0[:, 0]).flatten(1).any(1)
    assert 0.3 < share < 0.7 and abs(float(changed.float().mean()) - share) < 1e-6
    assert torch.equal(out[changed, :-1], ez[changed, :-1]) and torch.equal(out[~changed], x0[~changed])
    assert torch.equal(out[:, -1], x0[:, -1])  # the last target keeps its objects
    assert (w[changed, -1, 2:4, 2:4] == 0).all()  # not covered: unknowable, left out
    assert (w[changed, -1, 12:14, 12:14] == 5).all()  # covered: memory shows it, weighed up
    assert (w[~changed] == 1).all() and (w[:, :-1] == 1).all()
    none, w0, s0 = erase_clips(x0, ErasedClips(ez, cells), cover, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(none, x0) and s0 == 0.0 and (w0 == 1).all()
    # Faded: the changed clips sit between the clean and the erased latents, at one strength a clip in [0.25, 1].
    faded, wf, _ = erase_clips(x0, ErasedClips(ez, cells), cover, 0.5, torch.Generator().manual_seed(0), 5.0, fade=0.25)
    ch = (faded[:, 0] != x0[:, 0]).flatten(1).any(1)
    s_ = (faded[ch, :-1] - x0[ch, :-1]) / 10.0  # the strength, per element
    per_clip = s_.flatten(1)
    assert torch.allclose(per_clip, per_clip[:, :1].expand_as(per_clip), atol=1e-5)  # one strength a clip
    assert per_clip.min() >= 0.25 - 1e-5 and per_clip.max() <= 1 + 1e-5 and per_clip[:, 0].std() > 0.1
    assert torch.equal(faded[~ch], x0[~ch]) and torch.equal(faded[:, -1], x0[:, -1]) and torch.equal(wf, w)


def test_the_loss_trains_on_erased_clips_and_refuses_them_without_memory(memory_episode):
    from worldloom.training.dynamics import DynamicsRecipe, DynamicsTask

    T, z, dit, acts, ms = memory_episode.T, memory_episode.z, memory_episode.dit, memory_episode.acts, memory_episode.memory
    cells = torch.zeros(T, 16, 16, dtype=torch.bool)
    cells[:, 6:9, 6:9] = True
    recipe = DynamicsRecipe(clip_len=8, memory="place", memory_drop=0.0, memory_erase=0.9)
    task = DynamicsTask(dit, [z], [acts], recipe, memory=ms, erased=([z + 1.0], [cells]))
    batch = task.batch(torch.Generator().manual_seed(0), 4, torch.device("cpu"))
    assert isinstance(batch[-1], ErasedClips) and batch[-1].z.shape == (4, 8, 8, 16, 16)
    loss, logs = task.loss(dit, batch, torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss) and logs["erased_share"] > 0
    with pytest.raises(ValueError, match="memory_erase"):
        DynamicsTask(dit, [z], [acts], DynamicsRecipe(clip_len=8, memory_erase=0.5), erased=([z], [cells]))
    with pytest.raises(ValueError, match="memory_erase"):
        DynamicsTask(dit, [z], [acts], recipe, memory=ms)  # no erased latents
    for fade in (0.0, 1.5):  # an erasure of no strength, or past the erased latents
        with pytest.raises(ValueError, match=f"fade {fade}"):
            DynamicsTask(dit, [z], [acts], dataclasses.replace(recipe, memory_erase_fade=fade), memory=ms,
                         erased=([z + 1.0], [cells]))


def test_stale_memory_cells_weigh_in_the_loss(memory_episode):
    """memory_stale_weight changes the loss exactly where the placed memory disagrees with the frame before the
    target: the same batch, model and noise give another loss at 5 than at 1, and bad weights are refused."""
    from worldloom.training.dynamics import DynamicsRecipe, DynamicsTask

    z, dit, acts, ms = memory_episode.z, memory_episode.dit, memory_episode.acts, memory_episode.memory
    losses = []
    for w in (1.0, 5.0):
        task = DynamicsTask(dit, [z], [acts], DynamicsRecipe(clip_len=8, memory="place", memory_drop=0.0, memory_stale_weight=w),
                            memory=ms)
        batch = task.batch(torch.Generator().manual_seed(0), 4, torch.device("cpu"))
        losses.append(task.loss(dit, batch, torch.Generator().manual_seed(1))[0].detach().item())
    assert losses[0] != losses[1]
    with pytest.raises(ValueError, match="memory_erase"):
        DynamicsTask(dit, [z], [acts], DynamicsRecipe(clip_len=8, memory="place", memory_stale_weight=0.0), memory=ms)
