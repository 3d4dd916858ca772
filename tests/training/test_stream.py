"""Clips streamed by a DataLoader: every window once an epoch, disjoint shards per rank, the same clips
with or without workers, and a resumed run draws what an uninterrupted one would."""

from __future__ import annotations

import pytest
import torch

from worldloom.training.dynamics import ClipSampler, DynamicsRecipe, DynamicsTask
from worldloom.training.loop import TrainConfig, Trainer
from worldloom.training.stream import ClipStream, ClipWindows

CPU = torch.device("cpu")


def episodes(lengths=(7, 5, 9), C=2, h=4):
    g = torch.Generator().manual_seed(0)
    lat = [torch.randn(n, C, h, h, generator=g) for n in lengths]
    act = [torch.randint(0, 5, (n,), generator=g) for n in lengths]
    return lat, act


def test_windows_are_every_clip_once() -> None:
    lat, act = episodes()
    cs = ClipSampler(lat, act, 4)
    w = ClipWindows(cs)
    assert len(w) == (7 - 3) + (5 - 3) + (9 - 3)
    seen = set()
    for i in range(len(w)):
        x, a, (e, s) = w[i]
        assert torch.equal(x, lat[e][s : s + 4]) and torch.equal(a, act[e][s : s + 4])
        seen.add((int(e), int(s)))
    assert len(seen) == len(w)


def draws(stream: ClipStream, n: int) -> list[list[tuple[int, int]]]:
    out = []
    for _ in range(n):
        stream(None, stream.batch_size, CPU)
        out.append(stream.picks)
    return out


def test_ranks_take_disjoint_shards_and_workers_change_nothing() -> None:
    lat, act = episodes()
    cs = ClipSampler(lat, act, 4)
    r0, r1 = (ClipStream(cs, 2, 0, rank=r, world=2, seed=1) for r in (0, 1))
    a, b = draws(r0, r0.per_epoch), draws(r1, r1.per_epoch)
    flat_a, flat_b = {p for d in a for p in d}, {p for d in b for p in d}
    assert not flat_a & flat_b and len(flat_a) == len(flat_b) == 2 * r0.per_epoch
    assert draws(ClipStream(cs, 2, 2, rank=0, world=2, seed=1), r0.per_epoch) == a  # two worker processes


def test_a_started_stream_continues_where_the_uninterrupted_one_is() -> None:
    lat, act = episodes()
    cs = ClipSampler(lat, act, 4)
    full = draws(ClipStream(cs, 3, 0, seed=2, accum=2), 9)  # 12 windows, 4 batches an epoch: crosses two epochs
    resumed = ClipStream(cs, 3, 0, seed=2, accum=2)
    resumed.start(3)  # optimizer step 3 = micro-batch 6
    assert draws(resumed, 3) == full[6:]
    assert full[0] != full[4]  # a new epoch reshuffles
    with pytest.raises(ValueError, match="make no batch of 40"):
        ClipStream(cs, 40, 0)


def test_a_streamed_dynamics_run_resumes_exactly(tmp_path) -> None:
    from worldloom.models.dit import CausalDiT, DynamicsConfig

    def trainer(d):
        torch.manual_seed(0)
        dit = CausalDiT(DynamicsConfig(latent_channels=2, latent_size=4, patch=2, dim=16, depth=1, heads=2, max_frames=4))
        lat, act = episodes(C=2, h=4)
        act = [a.clamp(max=dit.cfg.n_actions - 1) for a in act]
        task = DynamicsTask(dit, lat, act, DynamicsRecipe(clip_len=4))
        cfg = TrainConfig(steps=6, batch_size=2, lr=1e-2, warmup=1, precision="fp32", device="cpu", workers=1,
                          log_every=1, ckpt_every=100)
        return Trainer(task, cfg, d, progress=False)

    full = trainer(tmp_path / "a")
    full.train()
    part = trainer(tmp_path / "b")
    part.train(until=3)
    resumed = trainer(tmp_path / "b")
    assert resumed.load_state()
    resumed.train()
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="--train-workers 2: LinearTask"):
        class LinearTask:
            model = torch.nn.Linear(1, 1)
        Trainer(LinearTask(), TrainConfig(workers=2, device="cpu"), tmp_path / "c", progress=False)
