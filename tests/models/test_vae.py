"""VAE tokenizer: shapes, uint8 round trip, standardisation, a few steps of learning, detail weights."""

import pytest
import torch

import torch.nn.functional as F

from worldloom.models.vae import VAE, VAEConfig, detail_weights


def test_encode_decode_shapes_and_dtypes():
    vae = VAE(VAEConfig(width=16, blocks=1)).eval()
    frames = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    z = vae.encode(frames)
    assert z.shape == (2, 3, 8, 16, 16)
    out = vae.decode(z)
    assert out.shape == frames.shape and out.dtype == torch.uint8


def test_downsample_8():
    vae = VAE(VAEConfig(width=16, blocks=1, downsample=8, latent_channels=16)).eval()
    assert vae.encode(torch.zeros(1, 64, 64, 3, dtype=torch.uint8)).shape == (1, 16, 8, 8)


def test_downsample_2_keeps_a_2px_cell_and_other_factors_fail_clearly():
    vae = VAE(VAEConfig(width=16, blocks=1, downsample=2)).eval()
    z = vae.encode(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    assert z.shape == (1, 8, 32, 32) and vae.decode(z).shape == (1, 64, 64, 3)
    with pytest.raises(ValueError, match="downsample must be 2, 4 or 8, got 16"):
        VAE(VAEConfig(width=16, blocks=1, downsample=16))


def test_pixel_range_round_trip():
    x = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8)
    assert torch.equal(VAE.to_uint8(VAE.to_float(x)), x)


def test_standardisation_is_applied_and_inverted():
    vae = VAE(VAEConfig(width=16, blocks=1)).eval()
    f = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    z0 = vae.encode(f)
    vae.latent_shift.fill_(0.5)
    vae.latent_scale.fill_(2.0)
    z1 = vae.encode(f)
    assert torch.allclose(z1, (z0 - 0.5) / 2, atol=1e-5)
    assert torch.equal(vae.decode(z1), vae.decode((z0 - 0.5) / 2))


def test_learns_a_few_steps():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(width=16, blocks=1))
    x = VAE.to_float(torch.randint(0, 256, (8, 64, 64, 3), dtype=torch.uint8)) * 0.2
    opt = torch.optim.Adam(vae.parameters(), 3e-3)
    first = None
    for _ in range(15):
        loss, m = vae.loss(x)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_detail_weights_single_out_a_two_pixel_ball_and_keep_the_loss_scale():
    x = torch.full((2, 3, 32, 32), -0.4)
    x[0, :, 10, 10:12] = 0.9  # a 2 px ball on a flat field, as Pong's at 64 px
    w = detail_weights(x, 20.0)
    assert w.shape == (2, 1, 32, 32) and abs(w.mean().item() - 1.0) < 1e-5
    assert w[0, 0, 10, 10] > 20 * w[1, 0, 5, 5] and torch.allclose(w[1], w[1, 0, 0, 0].expand_as(w[1]))  # flat: alike
    vae = VAE(VAEConfig(width=16, blocks=1, kl_weight=0.0))
    torch.manual_seed(0)
    plain, _ = vae.loss(x, torch.Generator().manual_seed(1))
    rec = vae.decode_raw(vae.encode_dist(x)[0] + torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(1))
                         * (0.5 * vae.encode_dist(x)[1]).exp())
    assert torch.allclose(plain, F.mse_loss(rec, x) + 0.1 * F.l1_loss(rec, x), rtol=1e-5)  # off: MSE + L1 as before
    vae.cfg.detail_weight = 20.0
    weighted, m = vae.loss(x, torch.Generator().manual_seed(1))
    assert not torch.allclose(weighted, plain) and abs(m["mse"] - F.mse_loss(rec, x).item()) < 1e-6  # mse unweighted
