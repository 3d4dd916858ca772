"""Training memory frames: drawn from before the window, as the run-time policies would, and used by the loss."""

import pytest
import torch

from worldloom.memory import Geometry
from worldloom.training.memory import MemorySampler

GEOM = Geometry(frame_size=64, latent_size=16, grid=8)


def episode(T: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (T, 4, 16, 16), each frame marked by its index, and a camera that goes right 4 px a frame and back."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(T, 4, 16, 16, generator=g) + torch.arange(T, dtype=torch.float32)[:, None, None, None]
    x = torch.tensor([4.0 * min(i, T - i) for i in range(T)])
    return z, torch.stack([x, torch.zeros(T)], 1)


def test_place_memory_frames_left_the_window_and_overlap_the_view():
    z, cam = episode()
    ms = MemorySampler("place", [z], GEOM, frames=2, window=8, poses=[cam], pool=3, drop=0.0)
    gen = torch.Generator().manual_seed(1)
    picks = [(0, s) for s in range(20, 32)]
    mem = ms(picks, 8, gen, torch.device("cpu"))
    assert mem.valid.all() and torch.all(mem.time == -1) and torch.all(mem.t == 0)
    for b, (_, s) in enumerate(picks):
        query = s + 6
        for j in range(2):
            c = int(round(float(mem.z[b, j].mean())))  # the frame's index, from its mark
            assert torch.equal(mem.z[b, j], z[c])
            assert c <= s - 1  # left a window of 8 by the clip's last frame
            dx = float(cam[c, 0] - cam[query, 0])
            assert abs(dx) <= 48  # overlap >= 1/4 of a 64 px view
            assert mem.offset[b, j].tolist() == [0.0, dx / GEOM.token_px]
            # one of the 3 best-overlapping candidates
            best = sorted(range(s), key=lambda i: abs(float(cam[i, 0] - cam[query, 0])))[:3]
            assert abs(float(cam[c, 0] - cam[query, 0])) <= max(abs(float(cam[i, 0] - cam[query, 0])) for i in best)


def test_jitter_moves_a_share_of_placements_by_whole_cells():
    """jitter: about that share of the memory frames sit 1-2 latent cells off the true placement on each axis
    (the same frames, as a drifted run-time pose places them); only place memory has a placement to move."""
    z, cam = episode()
    picks = [(0, s) for s in range(20, 32)] * 4
    exact = MemorySampler("place", [z], GEOM, frames=2, window=8, poses=[cam], pool=3, drop=0.0)
    moved = MemorySampler("place", [z], GEOM, frames=2, window=8, poses=[cam], pool=3, drop=0.0, jitter=0.5)
    a = exact(picks, 8, torch.Generator().manual_seed(1), torch.device("cpu"))
    b = moved(picks, 8, torch.Generator().manual_seed(1), torch.device("cpu"))
    cell = GEOM.cell_px / GEOM.token_px  # tokens per latent cell
    off = torch.zeros(len(picks), 2, 2, dtype=torch.float64)
    for i in range(len(picks)):
        for j in range(2):
            c = int(round(float(b.z[i, j].mean())))
            true = torch.tensor([0.0, float(cam[c, 0] - cam[picks[i][1] + 6, 0]) / GEOM.token_px], dtype=torch.float64)
            off[i, j] = (b.offset[i, j] - true) / cell
    shifted = (off != 0).any(-1)
    assert 0.3 < float(shifted.double().mean()) < 0.7 and torch.equal(a.valid, b.valid)
    assert bool((off[shifted].abs().round() == off[shifted].abs()).all()) and set(off[shifted].abs().flatten().tolist()) == {1.0, 2.0}
    with pytest.raises(ValueError, match="jitter"):
        MemorySampler("similar", [z], GEOM, jitter=0.5)


def test_similar_aligned_frames_are_placed_where_their_content_lines_up_with_the_query():
    """A panning camera over one smooth world: each memory frame's offset is where its content sits in the query
    frame's view (the run-time policy's ``register``), exact within reach, with no pose given."""
    g = torch.Generator().manual_seed(5)
    world = torch.nn.functional.interpolate(torch.randn(1, 4, 16, 40, generator=g), size=(16, 160), mode="bilinear")[0]
    xs = [min(i, 40 - i) for i in range(40)]  # the view's left edge, cells: right one a frame, then back
    z = torch.stack([world[:, :, x: x + 16] for x in xs])  # (40, 4, 16, 16)
    ms = MemorySampler("similar_aligned", [z], GEOM, frames=2, window=8, pool=3, drop=0.0)
    picks = [(0, s) for s in range(24, 32)]
    mem = ms.draw(picks, 8, torch.Generator().manual_seed(1), torch.device("cpu"))
    frames, index = mem
    cell = GEOM.cell_px / GEOM.token_px
    checked = 0
    for b, (_, s) in enumerate(picks):
        for j in range(2):
            true = xs[int(index[b, j])] - xs[s + 6]  # the frame's content sits this many cells right of the query's
            if abs(true) <= 4:
                assert frames.offset[b, j].tolist() == [0.0, true * cell]
                checked += 1
    assert checked >= 8 and (frames.offset[..., 1] != 0).any()


def test_a_short_window_never_draws_from_inside_the_clip():
    z, cam = episode()
    ms = MemorySampler("similar", [z], GEOM, frames=3, window=4, pool=8, drop=0.0)
    picks = [(0, s) for s in range(5, 30)]
    mem = ms(picks, 8, torch.Generator().manual_seed(2), torch.device("cpu"))
    for b, (_, s) in enumerate(picks):
        for j in range(3):
            assert int(round(float(mem.z[b, j].mean()))) < s  # before the clip: no target sees itself or its future


def test_successor_memory_frames_followed_a_like_frame_under_the_targets_action():
    z, _ = episode()
    acts = torch.tensor([i % 3 for i in range(40)])
    with pytest.raises(ValueError, match="actions"):
        MemorySampler("successor", [z], GEOM, frames=2, window=8)
    ms = MemorySampler("successor", [z], GEOM, frames=2, window=8, actions=[acts], pool=3, drop=0.0)
    picks = [(0, s) for s in range(12, 32)]
    mem = ms(picks, 8, torch.Generator().manual_seed(4), torch.device("cpu"))
    assert mem.valid.float().mean() > 0.3 and torch.all(mem.offset == 0)
    for b, (_, s) in enumerate(picks):
        for j in torch.nonzero(mem.valid[b]).flatten().tolist():
            c = int(round(float(mem.z[b, j].mean())))  # the memory frame's index, from its mark
            assert torch.equal(mem.z[b, j], z[c]) and 1 <= c <= s - 1  # a successor, from before the clip
            assert acts[c] == acts[s + 7]  # made by the action that makes the clip's last target


def test_no_history_no_memory_and_drop_empties_slots():
    z, cam = episode()
    ms = MemorySampler("place", [z], GEOM, frames=2, window=8, poses=[cam], drop=0.0)
    assert not ms([(0, 0)], 8, torch.Generator(), torch.device("cpu")).valid.any()  # nothing before the clip
    ms = MemorySampler("similar", [z], GEOM, frames=4, window=8, drop=0.5)
    mem = ms([(0, s) for s in range(10, 30)], 8, torch.Generator().manual_seed(0), torch.device("cpu"), 1.0, 0.2)
    share = float(mem.valid.float().mean())
    assert 0.3 < share < 0.7 and torch.all(mem.offset == 0) and 0 < float(mem.t.max()) <= 0.2


def test_place_memory_needs_poses():
    z, _ = episode()
    with pytest.raises(ValueError, match="state.camera"):
        MemorySampler("place", [z], GEOM)
    with pytest.raises(ValueError, match="place, similar"):
        MemorySampler("bogus", [z], GEOM)


def test_the_loss_sees_memory_frames():
    from worldloom.models.dit import CausalDiT, DynamicsConfig
    from worldloom.training.dynamics import DynamicsRecipe, DynamicsTask

    z, cam = episode()
    z8 = torch.cat([z, z], 1)  # 8 channels
    dit = CausalDiT(DynamicsConfig(latent_channels=8, dim=32, depth=1, heads=2, max_frames=8))
    recipe = DynamicsRecipe(clip_len=8, memory="place", memory_drop=0.0)
    acts = torch.zeros(len(z), dtype=torch.long)
    ms = MemorySampler("place", [z8], GEOM, frames=2, window=8, poses=[cam], drop=0.0)
    task = DynamicsTask(dit, [z8], [acts], recipe, memory=ms)
    batch = task.batch(torch.Generator().manual_seed(0), 4, torch.device("cpu"))
    assert batch[-1].z.shape == (4, 2, 8, 16, 16)
    loss, _ = task.loss(dit, batch, torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="memory sampler"):
        DynamicsTask(dit, [z8], [acts], recipe)


def test_a_blinded_window_is_noised_whole_while_memory_frames_stay_light():
    """ctx_blind: about that share of the clips get one heavy noise level over their whole window (>= ctx_blind_min);
    the rest keep the light augmentation, and memory frames keep theirs. Bad settings are clear errors."""
    from worldloom.models.dit import CausalDiT, DynamicsConfig, MemoryFrames
    from worldloom.training.dynamics import DynamicsRecipe, DynamicsTask

    z, cam = episode()
    z8 = torch.cat([z, z], 1)
    dit = CausalDiT(DynamicsConfig(latent_channels=8, dim=32, depth=1, heads=2, max_frames=8))
    seen: list[tuple[torch.Tensor, MemoryFrames]] = []

    class Spy(torch.nn.Module):  # records what the loss feeds the model
        def forward(self, x, t, actions, ctx=None, ctx_t=None, axes=None, memory=None):
            seen.append((ctx_t, memory))
            return dit(x, t, actions, ctx=ctx, ctx_t=ctx_t, axes=axes, memory=memory)

    recipe = DynamicsRecipe(clip_len=8, memory="place", memory_drop=0.0, ctx_blind=0.5, ctx_blind_min=0.6)
    ms = MemorySampler("place", [z8], GEOM, frames=2, window=8, poses=[cam], drop=0.0)
    task = DynamicsTask(dit, [z8], [torch.zeros(len(z), dtype=torch.long)], recipe, memory=ms)
    for i in range(8):
        batch = task.batch(torch.Generator().manual_seed(i), 8, torch.device("cpu"))
        task.loss(Spy(), batch, torch.Generator().manual_seed(100 + i))
    ctx_t = torch.cat([c for c, _ in seen])  # (64, T)
    blind = ctx_t.min(1).values >= 0.6
    assert 0.3 < float(blind.float().mean()) < 0.7
    assert bool((ctx_t[blind] == ctx_t[blind][:, :1]).all())  # one level over the whole window
    assert float(ctx_t[~blind].max()) <= recipe.ctx_noise_max
    assert float(torch.cat([m.t for _, m in seen]).max()) <= recipe.ctx_noise_max  # memory keeps its light noise
    for bad in ({"ctx_blind": 1.0}, {"ctx_blind": 0.5, "context": "df", "memory": "none"}, {"ctx_blind_min": 1.5}):
        with pytest.raises(ValueError, match="ctx_blind"):
            DynamicsTask(dit, [z8], [torch.zeros(len(z), dtype=torch.long)],
                         DynamicsRecipe(clip_len=8, **bad))


def test_a_student_plays_with_the_recipes_memory_else_the_teachers(tiny_world):
    import dataclasses

    from worldloom.training.distill import DistillRecipe, DistillTask

    z, a = [torch.zeros(40, 8, 16, 16)], [torch.zeros(40, dtype=torch.long)]
    sinky = dataclasses.replace(tiny_world, sim=dataclasses.replace(tiny_world.sim, sink=1, window=5))
    assert DistillTask(sinky, z, a, DistillRecipe()).sim_cfg.sink == 1  # as before memory: the teacher's sinks
    task = DistillTask(sinky, z, a, DistillRecipe(memory="similar", memory_slots=3))
    assert (task.sim_cfg.memory, task.sim_cfg.memory_slots, task.sim_cfg.sink) == ("similar", 3, 0)
    with pytest.raises(ValueError, match="memory_slots"):
        DistillTask(tiny_world, z, a, DistillRecipe(memory="place", memory_slots=0))


def test_a_student_trains_with_the_memory_its_rollouts_chose(tiny_world):
    """Self-rollout with place memory: the graded pass sees the frames the policy picked for the last rollout
    step, at the same relative time, and the loss trains through them."""
    from worldloom.training.distill import DistillRecipe, DistillTask

    g = torch.Generator().manual_seed(0)
    z = [torch.randn(24, 8, 16, 16, generator=g)]
    a = [torch.randint(0, 5, (24,), generator=g)]
    task = DistillTask(tiny_world, z, a, DistillRecipe(context=4, rollout_min=8, rollout_max=8, memory="place",
                                                       memory_slots=2, w_teacher=0.0))
    assert task.sim_cfg.memory == "place" and task.sim_cfg.memory_slots == 2
    batch = task.batch(torch.Generator().manual_seed(1), 2, torch.device("cpu"))
    loss, _ = task.loss(task.model, batch, torch.Generator().manual_seed(2))
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for p in task.model.parameters())
    sel = task.selection
    assert sel.valid.any()  # 12 frames, window 6: the first frames have left the window and overlap the view
    mem = task.memory_frames(12 - 6, z[0][0])
    assert torch.equal(mem.valid, sel.valid) and torch.all(mem.time == sel.time - 6)
    last = 12 - 1 - 6  # the last graded frame's position: memory sits a window before it, as at run time
    assert torch.all(mem.time == last - 6)


def test_the_teacher_sees_the_graded_memory_only_when_asked(tiny_world):
    """teacher_memory: the teacher's target is drawn seeing the very memory frames the graded pass saw (a teacher
    trained with memory draws it as if it had none otherwise); without a memory to share it is a clear error."""
    from worldloom.training.distill import DistillRecipe, DistillTask

    g = torch.Generator().manual_seed(0)
    z, a = [torch.randn(24, 8, 16, 16, generator=g)], [torch.randint(0, 5, (24,), generator=g)]
    for share in (False, True):
        task = DistillTask(tiny_world, z, a, DistillRecipe(context=4, rollout_min=8, rollout_max=8, memory="place",
                                                           memory_slots=2, teacher_steps=2, teacher_memory=share))
        seen, forward = [], task.teacher.forward

        def spy(*args, memory=None, forward=forward, **kw):
            seen.append(memory)
            return forward(*args, memory=memory, **kw)

        task.teacher.forward = spy  # the fixture's own DiT: put back below
        try:
            batch = task.batch(torch.Generator().manual_seed(1), 2, torch.device("cpu"))
            loss, _ = task.loss(task.model, batch, torch.Generator().manual_seed(2))
        finally:
            del task.teacher.forward
        assert torch.isfinite(loss) and len(seen) == 2  # one call per teacher step
        if share:
            graded = task.memory_frames(12 - 6, z[0][0])
            assert all(m is not None and torch.equal(m.valid, graded.valid) and torch.equal(m.time, graded.time)
                       and torch.equal(m.z, graded.z) for m in seen)
        else:
            assert all(m is None for m in seen)
    with pytest.raises(ValueError, match="teacher_memory needs a memory"):
        DistillTask(tiny_world, z, a, DistillRecipe(teacher_memory=True))


def test_stale_cells_are_where_the_placed_memory_disagrees_with_the_frame_before_the_target():
    """A memory frame equal to the true frame but for one moved object: that cell (grown by one) is stale, the
    rest is not, and nothing is stale where the memory does not cover the view."""
    from worldloom.models.dit import MemoryFrames
    from worldloom.training.memory import stale_cells

    prev = torch.randn(2, 4, 16, 16)
    mz = prev.clone()[:, None]  # (B, 1, C, h, w), placed where it was seen: no offset
    mz[0, 0, :, 5, 5] += 3.0  # an object there in memory, gone from the view now
    offset = torch.zeros(2, 1, 2, dtype=torch.float64)
    offset[1, 0, 1] = 2.0  # the second clip's memory frame sits 8 cells to the right: covers columns 8-15
    mz[1, 0, :, 5, 2] += 3.0  # a difference it would place at column 10
    mem = MemoryFrames(mz, torch.zeros(2, 1), torch.zeros(2, 1), offset, torch.ones(2, 1, dtype=torch.bool))
    prev[1, :, :, 8:] = mz[1, 0, :, :, :8]  # the second clip's frame shows what that memory frame places there ...
    prev[1, :, 5, 10] -= 3.0  # ... but for the object
    from worldloom.models.mem_copy import align

    st = stale_cells(prev, *align(mem.z, mem.offset, mem.valid, 4))
    assert st[0, 4:7, 4:7].all() and st[0].sum() == 9
    assert st[1, 4:7, 9:12].all() and st[1].sum() == 9 and not st[1, :, :8].any()
    mem.valid[:] = False
    assert not stale_cells(prev, *align(mem.z, mem.offset, mem.valid, 4)).any()
