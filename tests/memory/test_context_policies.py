"""Context policies: what each attends to, bounded banks, cached == uncached, windows play as before."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from worldloom.memory import (
    AlignedSimilarMemory,
    EarlyPlaceMemory,
    FirstPlaceMemory,
    Geometry,
    PlaceMemory,
    SimilarMemory,
    SinkMemory,
    SuccessorMemory,
    make_memory,
)
from worldloom.models.dit import CausalDiT, DynamicsConfig, MemoryFrames

GEOM = Geometry(frame_size=64, latent_size=16, grid=8)  # 4 px latent cells, 8 px tokens (patch 2)


def canvas(seed: int = 0, size: int = 64, channels: int = 4) -> torch.Tensor:
    """A smooth random latent world (channels, size, size): a view is any 16 x 16 crop of it."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(1, channels, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(c, size=(size, size), mode="bilinear", align_corners=False)[0]


def view(world: torch.Tensor, cx: int, cy: int) -> torch.Tensor:
    return world[:, cy : cy + 16, cx : cx + 16]


def lines_up(z: torch.Tensor, cur: torch.Tensor, dy: int, dx: int) -> bool:
    """Whether latent ``z``, its content placed ``(dy, dx)`` cells into ``cur``'s view, equals ``cur`` on their overlap."""
    ys, xs = slice(max(0, dy), 16 + min(0, dy)), slice(max(0, dx), 16 + min(0, dx))
    ys_e, xs_e = slice(max(0, -dy), 16 + min(0, -dy)), slice(max(0, -dx), 16 + min(0, -dx))
    return torch.allclose(z[:, ys_e, xs_e], cur[:, ys, xs], atol=1e-6)


def test_place_memory_tracks_the_camera_and_places_what_it_saw():
    """Out along a path and back: the pose integrates the true camera from the latents alone, and every
    chosen frame, moved by its offset, lines up with the current view."""
    world, W = canvas(), 3
    path = [(x, 10) for x in range(4, 24)] + [(23, y) for y in range(10, 20)] + [(x, 19) for x in range(23, 3, -1)]
    pol = PlaceMemory(slots=2, bank=64)
    pol.reset(1, GEOM)
    chosen = 0
    for i, (cx, cy) in enumerate(path):
        if i:
            sel = pol.select(i, W)
            for j, e in enumerate(sel.entries[0]):
                if e is None:
                    continue
                chosen += 1
                assert i - e.index >= W  # only frames that left the window
                dy, dx = (sel.offset[0, j] * 2).round().long().tolist()  # tokens -> latent cells (patch 2)
                assert lines_up(e.z, view(world, *path[i - 1]), dy, dx)  # the newest frame the pose was read from
            assert torch.all(sel.time == i - W)
        pol.observe(i, view(world, cx, cy)[None])
        assert pol.pose[0].tolist() == [4.0 * (cx - path[0][0]), 4.0 * (cy - path[0][1])]
    assert chosen > 20  # the way back found the places of the way out


def test_place_first_recalls_the_first_view_where_place_recalls_the_newest():
    """Out, back over the same places, out again: on the second way out ``place`` attends to the places' newest
    views (the way back's, or this leg's own once they left the window) and ``place_first`` to their first."""
    world, W = canvas(), 3
    leg = [(x, 10) for x in range(4, 20)]
    path = leg + leg[::-1][1:] + leg[1:]  # 16 out, 15 back, 15 out again
    picks = {}
    for cls in (PlaceMemory, FirstPlaceMemory):
        pol = cls(slots=1, bank=64)
        pol.reset(1, GEOM)
        got = []
        for i, (cx, cy) in enumerate(path):
            if i:
                e = pol.select(i, W).entries[0][0]
                got.append(None if e is None else e.index)
            pol.observe(i, view(world, cx, cy)[None])
        picks[cls.name] = got
    third = range(len(leg) + len(leg) - 1, len(path) - 1)  # steps of the second way out (select is one behind)
    first_idx = [picks["place_first"][i] for i in third if picks["place_first"][i] is not None]
    new_idx = [picks["place"][i] for i in third if picks["place"][i] is not None]
    assert first_idx and max(first_idx) < len(leg) - 1  # every pick is from the first way out, before the turn
    assert min(new_idx) >= len(leg) - 1  # the newest views: from the turn on


def test_place_early_recalls_the_oldest_covering_views_first():
    """Straight out from the start: ``place_first`` recalls the most overlapping place (the newest that left the
    window), ``place_early`` the two oldest views that still cover at least ``min_overlap`` of the current one, in
    age order; never one that covers less, and each placed so that it lines up with the current view."""
    world, W = canvas(2), 3
    path = [(x, 10) for x in range(4, 28)]  # 1 latent cell (4 px) a step: the start leaves the view's quarter
    first, early = FirstPlaceMemory(slots=2, bank=64), EarlyPlaceMemory(slots=2, bank=64)
    for pol in (first, early):
        pol.reset(1, GEOM)
    differ = dropped = 0
    for i, (cx, cy) in enumerate(path):
        if i:
            s_first, s_early = first.select(i, W), early.select(i, W)
            old = [e for e in early.banks[0].values() if i - e.index >= W]
            ov = {e.index: float(GEOM.view_overlap(torch.tensor(e.pose, dtype=torch.float64) - early.pose[0])) for e in old}
            eligible = sorted(k for k, v in ov.items() if v >= early.min_overlap)
            got = [e.index for e in s_early.entries[0] if e is not None]
            assert got == eligible[:2]  # the oldest covering views, oldest first
            dropped += len(ov) > len(eligible)  # the start's views once they cover less than a quarter
            for j, e in enumerate(s_early.entries[0]):
                if e is None:
                    continue
                dy, dx = (s_early.offset[0, j] * 2).round().long().tolist()
                assert lines_up(e.z, view(world, *path[i - 1]), dy, dx)
            top = s_first.entries[0][0]
            if top is not None:
                assert ov[top.index] == max(ov.values())  # place_first: the most overlap
                differ += got[0] != top.index
        for pol in (first, early):
            pol.observe(i, view(world, cx, cy)[None])
    assert differ > 5 and dropped > 3


@pytest.mark.parametrize("cls", [PlaceMemory, FirstPlaceMemory, EarlyPlaceMemory])
def test_place_bank_stays_bounded(cls):
    world = canvas(1, 128)
    pol = cls(slots=2, bank=5)
    pol.reset(2, GEOM)
    rng = np.random.default_rng(0)
    cx = cy = 50
    for i in range(300):
        cx, cy = int(np.clip(cx + rng.integers(-2, 3), 0, 112)), int(np.clip(cy + rng.integers(-2, 3), 0, 112))
        pol.observe(i, torch.stack([view(world, cx, cy), view(world, cy, cx)]))
        assert all(len(b) <= 5 for b in pol.banks)
        pol.select(i + 1, 4)
    assert pol.bank_size() == 10 and pol.nbytes() == 10 * 4 * 16 * 16 * 4


def test_similar_memory_finds_the_same_place_without_a_pose():
    places = [torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(s)) for s in range(5)]
    pol = SimilarMemory(slots=1, bank=3, stride=1)
    pol.reset(1, GEOM)
    seq = [0, 1, 2, 3, 4, 2, 2]  # place 2 again, long after its first visit
    for i, p in enumerate(seq):
        if i == 6:  # the next frame, from the revisit: the first view of place 2 is the one found
            assert pol.select(i, window=2).frames() == [[2]]
        pol.observe(i, (places[p] + 0.01 * i)[None])
        assert pol.bank_size() <= 3
    assert sorted(e.index for e in pol.banks[0].values()) == [2, 3, 4]  # 0, 1 left; the revisit is no new entry
    pol.reset(1, GEOM)
    for i, p in enumerate([0, 1, 2, 3]):
        pol.observe(i, places[p][None])
    assert pol.select(4, window=2).frames() == [[]]  # nothing like place 3 outside the window


def test_similar_aligned_places_a_recalled_view_where_its_content_lines_up():
    """Out along a row and back, no pose kept: each recalled frame, moved by its offset, matches the newest frame
    on their overlap; a frame recalled from a spot 1-3 cells away is moved, not laid over the view unshifted."""
    world, W = canvas(), 3
    path = [(x, 10) for x in range(4, 20)] + [(x, 10) for x in range(19, 3, -1)]
    pol = AlignedSimilarMemory(slots=2, bank=64, stride=3, min_sim=-1.0)
    pol.reset(1, GEOM)
    moved = chosen = 0
    for i, (cx, cy) in enumerate(path):
        if i:
            sel = pol.select(i, W)
            for e, off in zip(sel.entries[0], sel.offset[0]):
                if e is None:
                    continue
                chosen += 1
                assert i - e.index >= W and sel.time[0].eq(i - W).all()
                dy, dx = (off * 2).round().long().tolist()  # tokens -> latent cells (patch 2)
                true = path[e.index][0] - path[i - 1][0]  # where its content sits in the newest view, cells
                if abs(true) <= pol.reach:  # within reach: placed exactly, and its content lines up
                    assert (dy, dx) == (0, true)
                    assert lines_up(e.z, view(world, *path[i - 1]), dy, dx)
                    moved += dx != 0
        pol.observe(i, view(world, cx, cy)[None])
        assert pol.bank_size() <= 64
    assert chosen > 20 and moved > 5  # the way back recalled the way out, some of it from a few cells away
    with pytest.raises(ValueError, match="reach >= 0"):
        AlignedSimilarMemory(reach=-1)


def test_successor_memory_recalls_what_followed_the_same_view_under_the_same_action():
    places = [torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(s)) for s in range(6)]
    pol = SuccessorMemory(slots=1, bank=5)
    pol.reset(1, GEOM)
    seq, acts = [0, 1, 2, 3, 4, 0], [0, 2, 1, 1, 1, 1]  # place 0 --action 2--> place 1; later place 0 again
    for i, (p, a) in enumerate(zip(seq, acts)):
        pol.observe(i, places[p][None], None if i == 0 else torch.tensor([a]))
    assert pol.select(6, window=2, action=torch.tensor([2])).frames() == [[1]]  # what followed place 0 under 2
    assert pol.select(6, window=2, action=torch.tensor([3])).frames() == [[]]  # never taken from place 0
    assert pol.select(6, window=5, action=torch.tensor([2])).frames() == [[1]]
    assert pol.select(6, window=6, action=torch.tensor([2])).frames() == [[]]  # frame 1 still in the window
    pol.observe(6, places[5][None], torch.tensor([1]))
    assert pol.bank_size() == 5 and sorted(e.index for e in pol.banks[0].values()) == [2, 3, 4, 5, 6]  # bounded
    assert len(pol.keys[0]) == 5
    pol.reset(1, GEOM)
    for i in range(6):  # the same transition again and again: one entry, its first outcome
        pol.observe(i, places[i % 2][None], torch.tensor([2]))
    assert sorted(e.index for e in pol.banks[0].values()) == [1, 2]
    pol.observe(6, places[5][None], None)  # an unknown action makes no entry
    assert pol.bank_size() == 2 and len(pol.keys[0]) == 2


def test_sink_memory_keeps_the_first_frames_before_the_window():
    pol = SinkMemory(2)
    pol.reset(1, GEOM)
    for i in range(10):
        pol.observe(i, torch.full((1, 4, 16, 16), float(i)))
    sel = pol.select(10, window=4)
    assert sel.frames() == [[0, 1]] and sel.time.tolist() == [[5.0, 6.0]]


def test_make_memory_names_the_known_policies():
    assert make_memory("window").slots == 0
    with pytest.raises(ValueError, match="unknown memory 'bogus'; known: window, sink, place, place_first, place_early, similar"):
        make_memory("bogus")
    with pytest.raises(ValueError, match="bank >= slots"):
        make_memory("place", slots=4, bank=2)


# --- through the Simulator: the policy's choice is exactly what the DiT sees ---------------------------
def world16(mem_copy: bool = False):
    """A tiny world model whose clips may span 16 frames, so an uncached pass covers a whole rollout."""
    from worldloom.envs.arena import ARENA_ACTIONS
    from worldloom.models.vae import VAE, VAEConfig
    from worldloom.runtime.simulator import SimConfig, WorldModel

    torch.manual_seed(0)
    vae = VAE(VAEConfig(width=16, blocks=1)).eval()
    dit = CausalDiT(DynamicsConfig(dim=32, depth=2, heads=2, max_frames=16, pred="delta", prev_halo=1, mem_copy=mem_copy)).eval()
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return WorldModel(vae, dit, {"kind": "worldmodel"}, ARENA_ACTIONS, sim=SimConfig(steps=1, window=3))


@pytest.mark.parametrize("memory", ["sink", "place", "place_first", "place_early", "similar", "similar_aligned", "successor",
                                    "place+copy", "similar_aligned+copy"])
@pytest.mark.parametrize("fuse", [True, False])
def test_cached_equals_uncached_for_every_policy(memory, fuse):
    """Each step's output equals an uncached pass over the whole rollout (rolling-window mask) with that
    step's chosen memory frames, and the cache's mask lets the new frame see exactly the chosen slots.
    'place+copy': a model that may also copy the placed frame itself (models.mem_copy)."""
    from worldloom.runtime.simulator import Simulator

    m = world16(mem_copy=memory.endswith("+copy"))
    memory = memory.removesuffix("+copy")
    overrides = {"sink": 2} if memory == "sink" else {"memory": memory, "memory_slots": 2, "memory_bank": 16}
    sim = Simulator(m, fuse=fuse, **overrides)
    sim.memory.__dict__.update({"similar": {"stride": 1, "min_sim": -1.0}, "similar_aligned": {"stride": 1, "min_sim": -1.0},
                                "successor": {"min_sim": -1.0}}.get(memory, {}))
    world = canvas(2, channels=8)
    T0, n = 4, 12
    ctx = torch.stack([view(world, 4 + 2 * i, 8) for i in range(T0)])[None]  # (1, T0, 4, 16, 16): a panning camera
    acts = torch.randint(0, 2 if memory == "successor" else 5, (n,), generator=torch.Generator().manual_seed(3))
    sim.reset_latents(ctx, acts[:T0])
    lat, seen = [ctx[0, i] for i in range(T0)], 0
    sim.record_step = 0
    for i in range(T0, n):
        z = sim.step_latent(int(acts[i]))
        v_cached = sim.recorded - z  # one Euler step from t = 1 to 0: z = x - v
        sel = sim.selection
        mask = sim.cache._mask
        if sel.valid.any():
            seen += int(sel.valid.sum())
            N = m.dit.cfg.n_tok
            want = sel.valid.repeat_interleave(N, 1)[0]  # (mem*N,): the new frame's rows see the chosen slots only
            got = mask[0, 0, :, : sim.cache.mem * N]  # (rows, mem*N) of the step's last pass
            if fuse:  # a fused pass: the finished frame's rows (first N) see no memory, the new frame's the chosen
                assert not got[:-N].any() and all(torch.equal(r, want) for r in got[-N:])
            else:  # the last pass committed the frame: memory unseen
                assert not got.any()
        mem = MemoryFrames(torch.stack([e.z if e is not None else torch.zeros(8, 16, 16) for e in sel.entries[0]])[None],
                           torch.zeros(1, sim.memory.slots), sel.time.clone(), sel.offset.clone(), sel.valid)
        xs = torch.stack(lat + [sim.recorded[0]])[None]
        tt = torch.zeros(1, i + 1)
        tt[:, -1] = 1.0
        with torch.no_grad():
            ref = m.dit(xs, tt, acts[None, : i + 1], ctx=xs, ctx_t=tt * 0, window=3, memory=mem)[:, -1]
        assert (v_cached - ref).abs().max() <= 2e-4, (memory, i)
        lat.append(z[0])
    assert seen >= 4  # the policies did choose frames


GOLD = Path(__file__).resolve().parents[1] / "runtime" / "data" / "arena_window_rollout.npz"
MEMORY_FIELDS = ("memory", "memory_slots", "memory_bank")  # the sim fields memory added


def _pre_memory_arena(tmp_path: Path) -> Path:
    """The shipped ``arena`` as a checkpoint written before memory existed: its config without memory's fields."""
    import shutil

    from worldloom.checkpoint import resolve

    src = resolve("arena")
    config = json.loads((src / "config.json").read_text())
    config["sim"] = {k: v for k, v in config["sim"].items() if k not in MEMORY_FIELDS}
    (tmp_path / "config.json").write_text(json.dumps(config))
    shutil.copy(src / "model.safetensors", tmp_path / "model.safetensors")
    return tmp_path


def _gold_rollout(model, gold) -> np.ndarray:
    from worldloom.runtime.context import start_context
    from worldloom.runtime.simulator import Simulator

    ctx = start_context(model, int(gold["context_seed"]), gold["context_actions"])
    sim = Simulator(model)
    sim.reset(ctx.frames, ctx.actions)
    frames = sim.rollout(gold["actions"])
    assert sim.cache.mem == 0 and sim.state()["memory"] == "window"
    return frames


def test_a_window_checkpoint_plays_exactly_as_before_memory(tmp_path):
    """A checkpoint without memory in its config plays the window, bit for bit as with ``memory: window``
    written out, and the frames the shipped ``arena`` made with its window alone when it shipped (the gold
    file: this test's rollout on the 2-vCPU Xeon with AMX, 2026-12-07).

    Across machines the frames are close, not equal: the int8 and bf16 kernels round differently on a CPU
    without AMX (48.5 dB against an earlier gold there). A window of 4 instead of 8 scored 41.8 dB, hence
    the 45 dB floor."""
    import worldloom

    gold = np.load(GOLD)
    d = _pre_memory_arena(tmp_path)
    m = worldloom.load(d)
    assert "memory" not in m.config["sim"] and m.sim.memory == "window"
    frames = _gold_rollout(m, gold)
    err = (frames.astype(np.float64) - gold["frames"]) ** 2
    assert 10 * np.log10(255**2 / max(err.mean(), 1e-12)) > 45.0
    config = json.loads((d / "config.json").read_text())
    config["sim"]["memory"] = "window"
    (d / "config.json").write_text(json.dumps(config))
    assert np.array_equal(_gold_rollout(worldloom.load(d), gold), frames)
