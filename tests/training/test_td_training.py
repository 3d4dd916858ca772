"""Temporal-decoder training: rollouts as the model plays, the replay of its own frames, the written checkpoint."""

import dataclasses

import numpy as np
import pytest
import torch

from worldloom.checkpoint import load_weights
from worldloom.data.collect import collect
from worldloom.data.format import Dataset
from worldloom.models.temporal_decoder import TemporalDecoderConfig, as_shown
from worldloom.models.vae import VAE
from worldloom.runtime.simulator import Simulator
from worldloom.runtime.loading import load
from worldloom.training.distill import DistillRecipe, distill
from worldloom.training.loop import TrainConfig, Trainer
from worldloom.training.temporal_decoder import (TemporalDecoderRecipe, TemporalDecoderTask, make_rollouts,
                                                 train_temporal_decoder)

RECIPE = TemporalDecoderRecipe(rollouts=3, horizon=4, context=3, batch=2, reset_share=0.5)
TRAIN = TrainConfig(steps=6, batch_size=4, lr=3e-3, warmup=1, ema_decay=0.5, precision="fp32", log_every=100,
                    ckpt_every=1000)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return collect("arena", tmp_path_factory.mktemp("td") / "data", episodes=2, steps=10, seed=3, progress=False)


def test_rollouts_are_the_simulators(tiny_ckpt, data):
    model, ds = load(tiny_ckpt), Dataset.open(data)
    frames, z = make_rollouts(model, ds, RECIPE)
    assert frames.shape == (3, 5, 64, 64, 3) and z.shape == (3, 4, 8, 16, 16) and z.dtype == torch.float16
    # Find the first batch's two contexts in the data and roll them out by hand, as one batch.
    where = []
    for r in range(2):
        hits = [(e, st) for e in range(len(ds)) for st in range(ds.lengths[e] - 6)
                if np.array_equal(np.array(ds[e].frames[st + 2 : st + 7]), frames[r])]
        assert hits, f"rollout {r}: its frames are not consecutive frames of an episode"
        where.append(hits[0])
    ctx = np.stack([np.array(ds[e].frames[st : st + 3]) for e, st in where])
    acts = np.stack([np.array(ds[e].actions[st : st + 7]) for e, st in where]).astype(np.int64)
    sim = Simulator(model, batch=2, seed=RECIPE.seed)
    sim.reset(ctx, acts[:, :3])
    ref = torch.stack([sim.step_latent(acts[:, 3 + i]) for i in range(4)], 1)  # (2, N, C, h, w)
    torch.testing.assert_close(z[:2].float(), ref, atol=2e-3, rtol=0)


def test_replay_holds_the_decoders_own_frames(tiny_ckpt, data):
    model, ds = load(tiny_ckpt), Dataset.open(data)
    frames, z = make_rollouts(model, ds, RECIPE)
    task = TemporalDecoderTask(model.vae, frames, z, TemporalDecoderConfig(width=8, blocks=1, motion_mask_half=9),
                               dataclasses.replace(RECIPE, still_share=0.0))
    # Step 0 follows the true last context frame; later steps start from the base decoder's frames, as shown (uint8).
    assert torch.equal(task.shown[:, 0], model.vae.to_float(torch.from_numpy(frames[:, 0])).half())
    later = ~task.fixed[:, 1:]  # (S, N - 1); still openings hold the true frame (see the next test)
    assert torch.equal(task.shown[:, 1:][later], as_shown(task.base[:, 1:4].float()).half()[later])
    assert torch.equal(model.vae.to_float(model.vae.to_uint8(task.shown[:, 1:].float())).half(), task.shown[:, 1:])
    gen = torch.Generator().manual_seed(0)
    batch = task.batch(gen, 8, torch.device("cpu"))
    with torch.no_grad():
        task.model.out[-2].bias.view(-1, 4)[:3] = 0.5  # a visible residual, so the written frames differ
    before = task.shown.clone()
    task.loss(task.model, batch, gen)
    s, i = batch["s"], batch["i"]
    changed = {(int(a), int(b) + 1) for a, b in zip(s, i) if int(b) + 1 < task.N and not task.fixed[a, b + 1]}
    assert changed, "batch hit no step with a successor"
    for a, b in changed:
        assert not torch.equal(task.shown[a, b], before[a, b])
        assert torch.equal(as_shown(task.shown[a, b].float()).half(), task.shown[a, b])  # on the uint8 grid
    untouched = [(a, b) for a in range(task.S) for b in range(task.N) if (a, b) not in changed]
    assert all(torch.equal(task.shown[a, b], before[a, b]) for a, b in untouched)


def test_still_openings_follow_the_true_frame_and_stay_fixed(tiny_ckpt, data):
    model, ds = load(tiny_ckpt), Dataset.open(data)
    frames, z = make_rollouts(model, ds, RECIPE)
    frames = frames.copy()
    frames[0, 1:3] = frames[0, :1]  # rollout 0: the first two true frames repeat the context frame, then it moves
    frames[0, 3] = 255 - frames[0, 0]
    task = TemporalDecoderTask(model.vae, frames, z, TemporalDecoderConfig(width=8, blocks=1, motion_mask_half=9),
                               dataclasses.replace(RECIPE, still_share=1.0))
    assert task.fixed[0].tolist() == [True, True, True, False]  # steps 0-2 follow the true frame; step 3 follows a move
    assert task.fixed[:, 0].all()
    ctx = VAE.to_float(torch.from_numpy(frames[:, 0])).half()
    assert all(torch.equal(task.shown[0, i], ctx[0]) for i in range(3))
    batch = task.batch(torch.Generator().manual_seed(0), 16, torch.device("cpu"))
    assert task.fixed[batch["s"], batch["i"]].all()  # still_share 1: only still openings
    with torch.no_grad():
        task.model.out[-2].bias.view(-1, 4)[:3] = 0.5
    before = task.shown.clone()
    task.loss(task.model, batch, torch.Generator())
    assert torch.equal(task.shown[task.fixed], before[task.fixed])  # fixed points are never overwritten
    written = {(int(a), int(b) + 1) for a, b in zip(batch["s"], batch["i"]) if b + 1 < task.N and not task.fixed[a, b + 1]}
    assert all(not torch.equal(task.shown[a, b], before[a, b]) for a, b in written)


def test_psnr_loss_is_minus_the_mean_frame_psnr(tiny_ckpt, data):
    """loss='psnr' ranks by the eval's mean per-frame PSNR: one exact frame beats spreading the same error."""
    model, ds = load(tiny_ckpt), Dataset.open(data)
    frames, z = make_rollouts(model, ds, RECIPE)
    task = TemporalDecoderTask(model.vae, frames, z, TemporalDecoderConfig(width=8, blocks=1, motion_mask_half=9),
                               TemporalDecoderRecipe(**{**RECIPE.__dict__, "l1_weight": 0.0}))
    truth = task.truth[:2, 0].float()  # (2, 3, H, W)

    def loss_of(out):
        class Fixed(torch.nn.Module):
            def forward(self, *a):
                return out
        batch = {"s": torch.tensor([0, 1]), "i": torch.tensor([task.N - 1] * 2),
                 "base": truth, "base_prev": truth, "shown": truth, "truth": truth}
        return float(task.loss(Fixed(), batch, torch.Generator())[0])

    one_exact = truth.clone()
    one_exact[1] += 0.2  # all error on one frame
    spread = truth + 0.2 / 2**0.5  # the same pooled MSE, half on each
    assert loss_of(one_exact) < loss_of(spread)
    cap = 10 * np.log10(4 / task.eps)
    assert cap == pytest.approx(RECIPE.psnr_cap_db)
    assert loss_of(truth) == pytest.approx(np.log(task.eps))
    for bad in ({"loss": "ssim"}, {"horizon": 0}, {"reset_share": 1.5}):
        with pytest.raises(ValueError, match=f"recipe.{next(iter(bad))}"):
            TemporalDecoderRecipe(**bad)


def test_training_inputs_are_what_the_simulator_shows(tiny_ckpt, data):
    """Step 0's base_prev and shown frame are exactly the Simulator's after reset on the same context."""
    model, ds = load(tiny_ckpt), Dataset.open(data)
    frames, z = make_rollouts(model, ds, RECIPE)
    task = TemporalDecoderTask(model.vae, frames, z, TemporalDecoderConfig(width=8, blocks=1, motion_mask_half=9), RECIPE)
    hits = [(e, st) for e in range(len(ds)) for st in range(ds.lengths[e] - 6)
            if np.array_equal(np.array(ds[e].frames[st + 2 : st + 7]), frames[0])]
    e, st = hits[0]
    sim = Simulator(dataclasses.replace(model, tdec=task.model), seed=0)
    sim.reset(np.array(ds[e].frames[st : st + 3]), np.array(ds[e].actions[st : st + 3]))
    torch.testing.assert_close(task.base[0, 0].float(), sim.base_prev[0], atol=2e-3, rtol=0)  # fp16 table
    assert torch.equal(task.shown[0, 0], sim.shown[0].half())


def test_training_lowers_the_loss_and_writes_a_loadable_world_model(tiny_ckpt, data, tmp_path):
    model, ds = load(tiny_ckpt), Dataset.open(data)
    frames, z = make_rollouts(model, ds, RECIPE)
    task = TemporalDecoderTask(model.vae, frames, z, TemporalDecoderConfig(width=8, blocks=1, motion_mask_half=9), RECIPE)
    fixed = task.batch(torch.Generator().manual_seed(5), 12, torch.device("cpu"))
    with torch.no_grad():
        before = float(task.loss(task.model, fixed, torch.Generator())[0])
    Trainer(task, TRAIN, tmp_path / "run", progress=False).fit()
    with torch.no_grad():
        after = float(task.loss(task.model, fixed, torch.Generator())[0])
    assert after < before

    card = tiny_ckpt / "README.md"
    card.write_text(card.read_text() + "\n## Measured: rollout\n\nPSNR 99 dB\n\n## Notes\n\nkept\n")
    out = train_temporal_decoder(tiny_ckpt, data, tmp_path / "wm_td", TemporalDecoderConfig(width=8, blocks=1), RECIPE,
                                 TRAIN, progress=False, recipe_cmd="test")
    m2 = load(out.path)
    assert m2.tdec is not None and m2.config["temporal_decoder_train"]["recipe"]["horizon"] == 4
    # The agent box its view-shift estimate leaves out came from the env's registration, and is recorded.
    assert m2.tdec.cfg.motion_mask_half == 9 and m2.config["temporal_decoder"]["motion_mask_half"] == 9
    text = (out.path / "README.md").read_text()
    assert "Temporal decoder" in text and "## Notes" in text and "99 dB" not in text  # the source's numbers are not its own
    src = load_weights(tiny_ckpt / "model.safetensors")
    assert all(torch.equal(v, load_weights(out.path / "model.safetensors")[k]) for k, v in src.items())  # world model kept

    # A student distilled from it leaves the decoder behind (trained on the teacher's latents) and loads.
    st = distill(out.path, data, tmp_path / "student", DistillRecipe(context=2, rollout_min=6, rollout_max=7),
                 TrainConfig(steps=1, batch_size=1, lr=1e-4, warmup=1, precision="fp32", log_every=100, ckpt_every=100),
                 progress=False)
    assert load(st.path).tdec is None
    sim = Simulator(m2, seed=0)
    sim.reset(frames[0, :3], np.zeros(3, np.int64))
    assert sim.rollout([1, 2]).shape == (2, 64, 64, 3)
    with pytest.raises(ValueError, match="already has a temporal decoder"):
        train_temporal_decoder(out.path, data, tmp_path / "again", TemporalDecoderConfig(width=8, blocks=1), RECIPE,
                               TRAIN, progress=False)
