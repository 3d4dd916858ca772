"""TemporalDecoder: its start point, the exact copy path, and its place in the Simulator and checkpoints."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from worldloom.checkpoint import CheckpointError, save_checkpoint
from worldloom.config import to_dict
from worldloom.models.temporal_decoder import TemporalDecoder, TemporalDecoderConfig, as_shown
from worldloom.eval.motion import estimate_shift
from worldloom.models.vae import VAE
from worldloom.runtime.simulator import Simulator
from worldloom.runtime.loading import load
from worldloom.shift import estimate_shift_float, warp


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # (n, 3, H, W)


def _gates(td: TemporalDecoder) -> torch.Tensor:
    """The output conv's bias per channel after PixelShuffle: rows 0-2 residual, then 3 gate logits per source."""
    return td.out[-2].bias.view(-1, 4)


@pytest.mark.parametrize("motion_shift", [0, 8])
def test_fresh_decoder_is_the_base_decoder_plus_a_small_blend(motion_shift: int):
    td = TemporalDecoder(TemporalDecoderConfig(width=8, blocks=1, motion_shift=motion_shift, motion_mask_half=9)).eval()
    base, base_prev, prev = _frames(2, 0), _frames(2, 1), _frames(2, 2)
    e = torch.tensor(td.cfg.gate_bias).exp()
    g = e / (1 + td.cfg.sources * e)  # each source's share of a softmax with the draw's logit 0
    with torch.no_grad():
        out = td(base, base_prev, prev)
    srcs = [prev] + ([warp(prev, estimate_shift_float(base_prev, base, motion_shift, 9))] if motion_shift else [])
    torch.testing.assert_close(out, base + sum(g * (s - base) for s in srcs))


def test_the_agent_box_comes_from_the_env():
    """-2 (the default) takes the env's registered agent box; a decoder built without resolving it refuses to run."""
    cfg = TemporalDecoderConfig(width=8, blocks=1)
    assert cfg.with_env_prior("arena").motion_mask_half == 9 and cfg.with_env_prior("gym:CartPole-v1").motion_mask_half == -1
    assert TemporalDecoderConfig(width=8, motion_mask_half=3).with_env_prior("arena").motion_mask_half == 3
    with pytest.raises(ValueError, match="never resolved"):
        TemporalDecoder(cfg)(_frames(1, 0), _frames(1, 1), _frames(1, 2))


def test_a_decoder_saved_before_the_field_keeps_the_mask_it_was_trained_with(tmp_path, tdec_world):
    """Before motion_mask_half was recorded every decoder masked the 9 px box, whatever its env."""
    m = tdec_world
    td_cfg = {k: v for k, v in to_dict(m.tdec.cfg).items() if k != "motion_mask_half"}  # as such configs were saved
    for env in ("video", "arena"):  # an env with no agent box, and the arena's
        cfg = dict(m.config, env=env, vae=to_dict(m.vae.cfg), dynamics=to_dict(m.dit.cfg),
                   action_spec=m.action_spec.to_dict(), sim=to_dict(m.sim), temporal_decoder=td_cfg)
        d = save_checkpoint(tmp_path / env, cfg, {"vae": m.vae, "dit": m.dit, "tdec": m.tdec}, "# card\n")
        assert load(d).tdec.cfg.motion_mask_half == 9


def test_bad_configs_name_the_field(tmp_path, tdec_world):
    with pytest.raises(ValueError, match="temporal_decoder.width"):
        TemporalDecoderConfig(width=12)
    m = tdec_world
    cfg = dict(m.config, vae=to_dict(m.vae.cfg), dynamics=to_dict(m.dit.cfg), action_spec=m.action_spec.to_dict(),
               sim=to_dict(m.sim), temporal_decoder={"width": 12, "blocks": 1})
    d = save_checkpoint(tmp_path / "ck", cfg, {"vae": m.vae, "dit": m.dit, "tdec": m.tdec}, "# card\n")
    with pytest.raises(CheckpointError, match="config.json.*temporal_decoder.width"):
        load(d)


def test_an_open_gate_copies_the_last_frame_exactly():
    """What per-frame decoding cannot do: show the last frame again, bit for bit."""
    td = TemporalDecoder(TemporalDecoderConfig(width=8, blocks=1, gate_bias=60.0, motion_shift=0)).eval()
    with torch.no_grad():  # a residual as large as it gets: the open gate must shut it out too
        _gates(td)[:3] = 3.0
    base, base_prev, prev = _frames(2, 0), _frames(2, 1), _frames(2, 2)
    with torch.no_grad():
        out = td(base, base_prev, prev)
    assert torch.equal(VAE.to_uint8(out), VAE.to_uint8(prev))


def test_a_nearly_closed_gate_snaps_shut_at_inference():
    """Gate 0.97: unsnapped, its 3 % leak of a large residual moves the pixels; snapped at 0.95 (eval mode)
    they stay bit for bit. Training leaves the gate soft, so its gradient keeps pushing it towards 1."""
    base, base_prev, prev = _frames(2, 0), _frames(2, 1), _frames(2, 2)
    td = TemporalDecoder(TemporalDecoderConfig(width=8, blocks=1, gate_bias=math.log(0.97 / 0.03), keep_snap=0.95,
                                               motion_shift=0))
    with torch.no_grad():
        _gates(td)[:3] = 3.0
    out = td.train()(base, base_prev, prev)
    out.sub(base).pow(2).mean().backward()
    assert td.out[-2].bias.grad.view(-1, 4)[3:].abs().sum() > 0
    assert not torch.equal(VAE.to_uint8(out.detach()), VAE.to_uint8(prev))
    with torch.no_grad():
        assert torch.equal(VAE.to_uint8(td.eval()(base, base_prev, prev)), VAE.to_uint8(prev))
        td.cfg.keep_snap = 1.0  # disabled: the leak shows again
        assert not torch.equal(VAE.to_uint8(td(base, base_prev, prev)), VAE.to_uint8(prev))


def _texture(size: int = 96, seed: int = 0) -> torch.Tensor:
    """A smooth random texture (3, size, size) in [-1, 1]: every shift of it looks different."""
    x = torch.rand(3, size // 8, size // 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return torch.nn.functional.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]


def _view(world: torch.Tensor, x: int, y: int) -> torch.Tensor:
    return world[:, y : y + 64, x : x + 64]


def test_motion_compensation_copies_a_scrolled_view_exactly():
    """The view scrolled 4 px right and 4 px down: a decoder copying from the motion-compensated frame draws
    the new view bit for bit, except the band that scrolled in (edge pixels repeated there)."""
    world = _texture()
    prev = as_shown(_view(world, 10, 10)[None])  # (1, 3, 64, 64) the shown frame
    cur = as_shown(_view(world, 14, 14)[None])  # camera moved by (4, 4)
    blur = lambda x: torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)  # noqa: E731  soft base decodes
    assert estimate_shift_float(blur(prev), blur(cur)).tolist() == [[4, 4]]
    td = TemporalDecoder(TemporalDecoderConfig(width=8, blocks=1, motion_shift=8, motion_mask_half=9)).eval()
    with torch.no_grad():
        _gates(td)[3:6], _gates(td)[6:9] = -60.0, 60.0  # copy from the moved frame only
        out = td(blur(cur), blur(prev), prev)
    inside = (slice(None), slice(None), slice(0, 60), slice(0, 60))
    assert torch.equal(VAE.to_uint8(out[inside]), VAE.to_uint8(cur[inside]))
    assert not torch.equal(VAE.to_uint8(prev[inside]), VAE.to_uint8(cur[inside]))


def test_a_still_view_stays_exact_when_the_copy_is_split_between_sources():
    """No motion: the moved frame is the last one, so a copy split over both sources (0.49 each) still snaps
    to the last frame bit for bit."""
    base, prev = _frames(2, 0), as_shown(_frames(2, 2))
    td = TemporalDecoder(TemporalDecoderConfig(width=8, blocks=1, gate_bias=math.log(0.49 / 0.02), motion_shift=8, motion_mask_half=9)).eval()
    with torch.no_grad():
        _gates(td)[:3] = 3.0
        assert torch.equal(estimate_shift_float(base, base), torch.zeros(2, 2, dtype=torch.long))
        assert torch.equal(VAE.to_uint8(td(base, base, prev)), VAE.to_uint8(prev))


def test_float_shift_estimate_is_the_metric_estimator():
    """One block matcher: on frames on the uint8 grid the decoder's estimate is the eval's."""
    world = _texture(seed=3)
    pairs = [((20, 20), (20 + dx, 20 + dy)) for dx, dy in [(4, 0), (-4, 4), (0, -8), (2, -2), (0, 0)]]
    prev = as_shown(torch.stack([_view(world, *a) for a, _ in pairs]))
    cur = as_shown(torch.stack([_view(world, *b) for _, b in pairs]))
    ref = estimate_shift(VAE.to_uint8(prev).numpy(), VAE.to_uint8(cur).numpy(), max_shift=8)
    assert estimate_shift_float(prev, cur, 8).tolist() == ref.tolist() == [[4, 0], [-4, 4], [0, -8], [2, -2], [0, 0]]


def test_keep_snap_out_of_range_is_refused():
    with pytest.raises(ValueError, match="keep_snap"):
        TemporalDecoderConfig(keep_snap=0.0)
    with pytest.raises(ValueError, match="motion_shift"):
        TemporalDecoderConfig(motion_shift=-1)


@pytest.fixture
def tdec_world(tiny_world):
    torch.manual_seed(1)
    td = TemporalDecoder(TemporalDecoderConfig(width=8, blocks=1, motion_mask_half=9)).eval()
    with torch.no_grad():  # trained-looking: every input reaches the output
        for p in td.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return dataclasses.replace(tiny_world, tdec=td)


def _context(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8), np.array([0, 4, 4])


def test_simulator_draws_after_the_last_shown_frame(tdec_world, tiny_world):
    frames, acts = _context()
    outs = {}
    for name, m in (("td", tdec_world), ("base", tiny_world)):
        sim = Simulator(m, seed=1)
        sim.reset(frames, acts)
        outs[name] = sim.rollout([1, 2, 3])
    assert outs["td"].shape == outs["base"].shape == (3, 64, 64, 3)
    assert not np.array_equal(outs["td"], outs["base"])
    # The first frame is drawn after the true last context frame, not its decode.
    sim = Simulator(tdec_world, seed=1)
    sim.reset(frames, acts)
    assert torch.equal(sim.shown[0], VAE.to_float(torch.from_numpy(frames[-1])))
    assert not torch.equal(sim.shown, as_shown(sim.base_prev))
    other = frames.copy()
    other[-1] = 255 - other[-1]
    sim = Simulator(tdec_world, seed=1)
    sim.reset(other, acts)
    assert not np.array_equal(sim.step(1), outs["td"][0])


def test_future_actions_do_not_change_past_frames_with_a_temporal_decoder(tdec_world):
    frames, acts = _context()
    ref_sim = Simulator(tdec_world, seed=1)
    ref_sim.reset(frames, acts)
    ref = ref_sim.rollout([1, 1, 2, 2, 3])
    for t in range(4):
        sim = Simulator(tdec_world, seed=1)
        sim.reset(frames, acts)
        out = sim.rollout([1, 1, 2, 2, 3][: t + 1] + [4] * (4 - t))
        assert np.array_equal(out[: t + 1], ref[: t + 1])


def test_checkpoint_round_trip_with_a_temporal_decoder(tdec_world, tmp_path):
    m = tdec_world
    cfg = dict(m.config, vae=to_dict(m.vae.cfg), dynamics=to_dict(m.dit.cfg), action_spec=m.action_spec.to_dict(),
               sim=to_dict(m.sim), temporal_decoder=to_dict(m.tdec.cfg))
    d = save_checkpoint(tmp_path / "ck", cfg, {"vae": m.vae, "dit": m.dit, "tdec": m.tdec}, "# card\n")
    m2 = load(d)
    assert m2.tdec is not None and m2.tdec.cfg == m.tdec.cfg
    frames, acts = _context()
    outs = []
    for mm in (m, m2):
        sim = Simulator(mm, seed=0)
        sim.reset(frames, acts)
        outs.append(sim.rollout([1, 2]))
    assert np.array_equal(outs[0], outs[1])
    # Weights without a config (or the reverse) are refused, naming the file.
    cfg.pop("temporal_decoder")
    d2 = save_checkpoint(tmp_path / "ck2", cfg, {"vae": m.vae, "dit": m.dit, "tdec": m.tdec}, "# card\n")
    with pytest.raises(CheckpointError, match="model.safetensors.*temporal-decoder"):
        load(d2)
    d3 = save_checkpoint(tmp_path / "ck3", {**cfg, "temporal_decoder": to_dict(m.tdec.cfg)}, {"vae": m.vae, "dit": m.dit},
                         "# card\n")
    with pytest.raises(CheckpointError, match="temporal decoder"):
        load(d3)
