"""Simulator: determinism, causality of rollouts, flat cache, errors, save/load round-trip."""

import numpy as np
import pytest
import torch

from worldloom.checkpoint import CheckpointError, save_checkpoint
from worldloom.config import to_dict
from worldloom.runtime.simulator import Simulator
from worldloom.runtime.loading import load


def _context(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8), np.array([0, 4, 4][:n])


def test_rollout_is_deterministic_under_seed(tiny_world):
    frames, acts = _context()
    outs = []
    for _ in range(2):
        sim = Simulator(tiny_world, seed=7)
        sim.reset(frames, acts)
        outs.append(sim.rollout([1, 2, 3, 4]))
    assert outs[0].shape == (4, 64, 64, 3) and outs[0].dtype == np.uint8
    assert np.array_equal(outs[0], outs[1])
    sim = Simulator(tiny_world, seed=8)
    sim.reset(frames, acts)
    assert not np.array_equal(sim.rollout([1, 2, 3, 4]), outs[0])


def test_future_actions_do_not_change_past_frames(tiny_world):
    frames, acts = _context()
    base = Simulator(tiny_world, seed=1)
    base.reset(frames, acts)
    ref = base.rollout([1, 1, 2, 2, 3, 3])
    for t in range(5):
        alt = [1, 1, 2, 2, 3, 3][: t + 1] + [4] * (5 - t)
        sim = Simulator(tiny_world, seed=1)
        sim.reset(frames, acts)
        out = sim.rollout(alt)
        assert np.array_equal(out[: t + 1], ref[: t + 1])


def test_actions_change_the_output(tiny_world):
    frames, acts = _context()
    outs = []
    for a in (1, 4):
        sim = Simulator(tiny_world, seed=1)
        sim.reset(frames, acts)
        outs.append(sim.step_latent(a))
    assert not torch.equal(outs[0], outs[1])


def test_batched_worlds_are_independent(tiny_world):
    """World 0 of a batch does not see world 1's actions (no leakage across the batch)."""
    frames, acts = _context()
    outs = []
    for other in ([4, 4, 0], [1, 3, 2]):
        sim = Simulator(tiny_world, batch=2, seed=3)
        sim.reset(np.stack([frames, frames]), np.stack([acts, acts]))
        outs.append(sim.rollout(np.array([[1, 2, 3], other])))
    assert outs[0].shape == (2, 3, 64, 64, 3)
    assert np.array_equal(outs[0][0], outs[1][0])
    assert not np.array_equal(outs[0][1], outs[1][1])


def test_cache_stays_flat_over_long_rollout(tiny_world):
    frames, acts = _context()
    sim = Simulator(tiny_world, window=4, sink=1)
    sim.reset(frames, acts)
    nbytes = sim.state()["cache_bytes"]
    for i in range(40):
        sim.step_latent(i % 5)
    st = sim.state()
    assert st["cache_bytes"] == nbytes and st["cached_frames"] == 5 and st["step"] == 43


def test_bad_inputs_are_clear_errors(tiny_world):
    sim = Simulator(tiny_world)
    with pytest.raises(RuntimeError, match="reset"):
        sim.step(0)
    frames, acts = _context()
    with pytest.raises(ValueError, match="uint8"):
        sim.reset(frames.astype(np.float32), acts)
    sim.reset(frames, acts)
    with pytest.raises(ValueError, match="out of range"):
        sim.step(9)
    with pytest.raises(ValueError, match="max_frames"):
        Simulator(tiny_world, window=8, sink=1)


def test_checkpoint_round_trip(tiny_world, tmp_path):
    cfg = dict(tiny_world.config, vae=to_dict(tiny_world.vae.cfg), dynamics=to_dict(tiny_world.dit.cfg),
               action_spec=tiny_world.action_spec.to_dict(), sim=to_dict(tiny_world.sim))
    save_checkpoint(tmp_path / "ck", cfg, {"vae": tiny_world.vae, "dit": tiny_world.dit}, "# card\n")
    m2 = load(tmp_path / "ck")
    for a, b in ((tiny_world.vae, m2.vae), (tiny_world.dit, m2.dit)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert m2.sim == tiny_world.sim and m2.action_spec == tiny_world.action_spec
    frames, acts = _context()
    outs = []
    for m in (tiny_world, m2):
        sim = Simulator(m, seed=0)
        sim.reset(frames, acts)
        outs.append(sim.rollout([1, 2]))
    assert np.array_equal(outs[0], outs[1])


def test_corrupt_checkpoints_name_the_file(tiny_world, tmp_path):
    cfg = dict(tiny_world.config, vae=to_dict(tiny_world.vae.cfg), dynamics=to_dict(tiny_world.dit.cfg),
               action_spec=tiny_world.action_spec.to_dict(), sim=to_dict(tiny_world.sim))
    d = save_checkpoint(tmp_path / "ck", cfg, {"vae": tiny_world.vae, "dit": tiny_world.dit}, "# card\n")
    w = d / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load(d)
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "nope")
    # a key mismatch lists the keys
    d2 = save_checkpoint(tmp_path / "ck2", cfg, {"vae": tiny_world.vae}, "# card\n")
    with pytest.raises(CheckpointError, match="missing keys"):
        load(d2)


def test_record_metrics_replaces_its_card_section(tiny_world, tmp_path):
    from worldloom.checkpoint import record_metrics, strip_front_matter
    from worldloom.config import read_json

    cfg = dict(tiny_world.config, vae=to_dict(tiny_world.vae.cfg), dynamics=to_dict(tiny_world.dit.cfg),
               action_spec=tiny_world.action_spec.to_dict(), sim=to_dict(tiny_world.sim))
    d = save_checkpoint(tmp_path / "ck", cfg, {"vae": tiny_world.vae, "dit": tiny_world.dit}, "# card\n\nrecipe\n")
    record_metrics(d, "eval", {"psnr": 1.0}, "| a | 1 |", "worldloom eval x")
    record_metrics(d, "eval", {"psnr": 2.0}, "| a | 2 |", "worldloom eval y")
    card = (d / "README.md").read_text()
    assert card.count("## Measured: eval") == 1 and "| a | 2 |" in card and "| a | 1 |" not in card
    assert card.startswith("---\nlibrary_name: worldloom\n")  # Hub front-matter, then the card's own text
    assert strip_front_matter(card).startswith("# card") and "recipe" in card
    assert read_json(d / "config.json")["metrics"]["eval"] == {"psnr": 2.0}
    load(d)  # still a loadable checkpoint


def test_warm_start_from_previous_frame(tiny_world):
    frames, acts = _context()
    sim = Simulator(tiny_world, t_max=0.5, init="prev")
    sim.reset(frames, acts)
    assert sim.rollout([1, 2]).shape == (2, 64, 64, 3)
    with pytest.raises(ValueError, match="init"):
        Simulator(tiny_world, init="bogus")


def test_reencode_puts_the_shown_frame_back_into_the_context(tiny_world):
    """With reencode the context holds encode(decode(x)) of the frame the DiT drew, and the next frame
    follows from that context, not from the raw latent."""
    frames, acts = _context()
    sims = {}
    for re in (False, True):
        sims[re] = Simulator(tiny_world, seed=3, reencode=re)
        sims[re].reset(frames, acts)
        sims[re].step_latent(1)
    vae = tiny_world.vae
    with torch.inference_mode():
        want = vae.encode(vae.decode(sims[False].latent)).float()
    assert torch.equal(sims[True].latent, want) and not torch.equal(sims[True].latent, sims[False].latent)
    assert not torch.equal(sims[True].step_latent(2), sims[False].step_latent(2))


@pytest.mark.parametrize("steps,context_noise,dit_kw", [(1, 0.0, None), (2, 0.1, None),
                                                        (1, 0.0, {"pred": "delta", "prev_halo": 1, "conv": 3}),
                                                        (2, 0.1, {"pred": "delta", "prev_halo": 1, "prev_frames": 2})])
def test_fused_commit_equals_separate_passes(tiny_world, steps, context_noise, dit_kw):
    """Committing a frame inside the next frame's first pass gives the same rollout, past the window too."""
    import dataclasses

    from worldloom.models.dit import CausalDiT
    from worldloom.runtime.simulator import WorldModel

    world = tiny_world
    if dit_kw:  # the 'delta' head adds the stacked previous frame: checks both frames of a fused pass get theirs
        dit = CausalDiT(dataclasses.replace(tiny_world.dit.cfg, **dit_kw)).eval()
        with torch.no_grad():
            for p in dit.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        world = WorldModel(tiny_world.vae, dit, tiny_world.config, tiny_world.action_spec, sim=tiny_world.sim)
    frames, acts = _context()
    outs = {}
    for fuse in (False, True):
        sim = Simulator(world, steps=steps, window=4, context_noise=context_noise, fuse=fuse, seed=3)
        sim.reset(frames, acts)
        outs[fuse] = torch.stack([sim.step_latent(a) for a in [1, 2, 3, 4, 0, 1, 1, 2, 3, 4, 4, 2]])
        assert sim.fused == fuse
    assert (outs[True] - outs[False]).abs().max() <= 1e-4


def test_fused_stepping_needs_a_spare_slot(tiny_world):
    sim = Simulator(tiny_world, sink=1, window=4)
    assert sim.fused  # memory frames (sinks too) are fixed for a step's passes: fusing them is exact
    cache = tiny_world.dit.new_cache(1, 4)
    x = torch.zeros(1, 8, 16, 16)
    with pytest.raises(ValueError, match="spare"):
        tiny_world.dit.step_fused(x, torch.zeros(1), torch.zeros(1, dtype=torch.long), None, x, torch.ones(1),
                                  torch.zeros(1, dtype=torch.long), cache)


def test_continuous_axes_drive_the_rollout(tiny_world):
    """A model with axes: fused == unfused, the values change the frames, bad values are clear errors."""
    import dataclasses

    from worldloom.actions import ActionSpec, Axis
    from worldloom.models.dit import CausalDiT
    from worldloom.runtime.simulator import WorldModel

    spec = ActionSpec(names=tiny_world.action_spec.names, keys=tiny_world.action_spec.keys,
                      axes=(Axis("steer", -2.0, 2.0),))
    dit = CausalDiT(dataclasses.replace(tiny_world.dit.cfg, n_axes=1, pred="delta", prev_halo=1)).eval()
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    world = WorldModel(tiny_world.vae, dit, tiny_world.config, spec, sim=tiny_world.sim)
    frames, acts = _context()
    steer = np.array([[2.0], [-2.0], [0.5], [1.0], [-1.5], [0.0], [2.0], [-2.0]], np.float32)
    outs = {}
    for fuse in (False, True):
        sim = Simulator(world, steps=2, window=4, fuse=fuse, seed=3)
        sim.reset(frames, acts, np.zeros((len(acts), 1), np.float32))
        outs[fuse] = torch.stack([sim.step_latent(1, steer[i]) for i in range(len(steer))])
    assert (outs[True] - outs[False]).abs().max() <= 1e-4
    sim = Simulator(world, steps=2, window=4, seed=3)
    sim.reset(frames, acts)  # context axes default to rest
    other = torch.stack([sim.step_latent(1, -steer[i]) for i in range(len(steer))])
    assert (other - outs[False]).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"axis 'steer' value 2.5 .* outside \[-2.0, 2.0\]"):
        sim.step(1, [2.5])
    with pytest.raises(ValueError, match="expected 1 values"):
        sim.step(1, [0.0, 0.0])
    with pytest.raises(ValueError, match="no continuous axes"):
        s2 = Simulator(tiny_world)
        s2.reset(frames, acts)
        s2.step(1, [0.5])
