"""Tokenizer: a small convolutional VAE from uint8 frames (H, W, 3) to a latent grid (C, H/f, W/f).

Key choices:
- Space-to-depth (pixel unshuffle) as the first and last layer, so no convolution runs at full
  resolution: most compute sits at H/2 and H/4, which is what makes CPU training affordable.
- A KL-regularised autoencoder (tiny KL weight): the posterior mean is the latent at run time, and
  latents are standardised by a per-channel scale/shift measured on data after training, so the
  dynamics model sees roughly unit-variance inputs.
- Downsampling f = 4 by default: a 4-px camera step is exactly one latent cell. f = 2 (2-px cells, 44.5 dB
  against 39.9 on a plain-floor world) made a 16-token dynamics model move and keep its ball far worse
  (balls drawn over h1-8: 18 against 69.5 %; docs/BENCHMARKS.md, "Objects", thirtieth session); f = 8 is the
  GPU presets'.
- ``detail_weight`` (off by default) weighs up pixels that stand out from their 5x5 neighbourhood.
  Whole-frame MSE lets a 1-2 px object go: Pong's ball at 64 px (two pixels 30-60 levels over the
  field) was drawn in 0 % of a 43.8 dB tokenizer's reconstructions, smeared or gone
  (docs/BENCHMARKS.md, "Pong end to end"). The weights are normalised to mean 1 per batch, so the
  loss keeps its scale and a frame without small details trains as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import doc


@dataclass
class VAEConfig:
    frame_size: int = doc(64, "input frame height = width (px)")
    latent_channels: int = doc(8, "channels of the latent grid")
    downsample: int = doc(4, "spatial downsampling factor (2, 4 or 8)")
    width: int = doc(64, "channels at the highest internal resolution")
    blocks: int = doc(2, "residual blocks per resolution")
    kl_weight: float = doc(1e-6, "weight of the KL term in the tokenizer loss")
    detail_weight: float = doc(0.0, "extra reconstruction weight per unit of a pixel's distance from its 5x5 mean "
                                    "(summed over RGB in [-1, 1]): small objects and edges; 0 = plain MSE + L1")

    @property
    def latent_size(self) -> int:
        return self.frame_size // self.downsample


def detail_weights(x: torch.Tensor, weight: float, k: int = 5) -> torch.Tensor:
    """Per-pixel loss weights (B, 1, H, W), mean 1 over the batch: 1 + ``weight`` x the pixel's distance
    from its k x k neighbourhood mean (L1 over RGB; x (B, 3, H, W) in [-1, 1])."""
    with torch.no_grad():
        local = F.avg_pool2d(x.float(), k, stride=1, padding=k // 2, count_include_pad=False)
        w = 1.0 + weight * (x.float() - local).abs().sum(1, keepdim=True)
        return w / w.mean()


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.n1 = nn.GroupNorm(8, ch)
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.n2 = nn.GroupNorm(8, ch)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        return x + self.c2(F.silu(self.n2(h)))


def _stage(ch: int, n: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(ch) for _ in range(n)))


class VAE(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_down = {2: 0, 4: 1, 8: 2}.get(cfg.downsample)  # stride-2 convs after the 2x space-to-depth
        if n_down is None:
            raise ValueError(f"VAE downsample must be 2, 4 or 8, got {cfg.downsample}")
        w, c, nb = cfg.width, cfg.latent_channels, cfg.blocks
        chans = [w]  # channels per resolution, rounded to multiples of 8 for GroupNorm
        for _ in range(n_down):
            chans.append((chans[-1] * 3 // 2 + 7) // 8 * 8)
        enc: list[nn.Module] = [nn.PixelUnshuffle(2), nn.Conv2d(12, w, 3, padding=1), _stage(w, nb)]
        for a, b in zip(chans, chans[1:]):
            enc += [nn.Conv2d(a, b, 3, stride=2, padding=1), _stage(b, nb)]
        enc += [nn.GroupNorm(8, chans[-1]), nn.SiLU(), nn.Conv2d(chans[-1], 2 * c, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(c, chans[-1], 3, padding=1), _stage(chans[-1], nb)]
        for a, b in zip(chans[::-1], chans[::-1][1:]):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1), _stage(b, nb)]
        dec += [nn.GroupNorm(8, w), nn.SiLU(), nn.Conv2d(w, 12, 3, padding=1), nn.PixelShuffle(2)]
        self.decoder = nn.Sequential(*dec)
        # Latent standardisation, set from data after training (see training/tokenizer.py).
        self.register_buffer("latent_shift", torch.zeros(c))
        self.register_buffer("latent_scale", torch.ones(c))
        # Run-time layout (set by runtime.speed.accelerate): NHWC activations let oneDNN pick its
        # direct conv kernels instead of reordering NCHW tensors around every conv.
        self.channels_last = False

    # --- pixel <-> model range ------------------------------------------------------------------
    @staticmethod
    def to_float(frames: torch.Tensor) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
        return frames.movedim(-1, -3).float().div(127.5).sub(1.0)

    @staticmethod
    def to_uint8(x: torch.Tensor) -> torch.Tensor:
        """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3)."""
        return x.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).movedim(-3, -1)

    # --- raw (unnormalised) paths used in training ------------------------------------------------
    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, H, W) in [-1, 1] -> posterior mean, logvar (B, C, h, w)."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            z = z.contiguous(memory_format=torch.channels_last)
        return self.decoder(z)

    # --- public: uint8 frames <-> standardised latents ---------------------------------------------
    def _shape(self, v: torch.Tensor) -> torch.Tensor:
        return v[:, None, None]

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, 3) -> standardised latents (..., C, h, w) (posterior mean)."""
        lead = frames.shape[:-3]
        x = self.to_float(frames.reshape(-1, *frames.shape[-3:])).to(self.latent_scale.dtype)
        mean, _ = self.encode_dist(x)
        z = (mean - self._shape(self.latent_shift)) / self._shape(self.latent_scale)
        return z.reshape(*lead, *z.shape[1:])

    def decode_float(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised latents (B, C, h, w) -> fp32 frames (B, 3, H, W) in [-1, 1] (unclamped)."""
        z = z.to(self.latent_scale.dtype)
        return self.decode_raw(z * self._shape(self.latent_scale) + self._shape(self.latent_shift)).float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised latents (..., C, h, w) -> uint8 frames (..., H, W, 3)."""
        lead = z.shape[:-3]
        frames = self.to_uint8(self.decode_float(z.reshape(-1, *z.shape[-3:])))
        return frames.reshape(*lead, *frames.shape[1:])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss(x)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction (MSE + L1, weighted by :func:`detail_weights` if ``detail_weight``) + KL on a batch
        x (B, 3, H, W) in [-1, 1]; the reported ``mse``/``psnr`` are unweighted."""
        mean, logvar = self.encode_dist(x)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + eps * (0.5 * logvar).exp()
        rec = self.decode_raw(z)
        err = rec.float() - x.float()  # (B, 3, H, W)
        sq, ab = err.pow(2), err.abs()
        mse = sq.mean()  # unweighted: what PSNR reports
        if self.cfg.detail_weight > 0:
            w = detail_weights(x, self.cfg.detail_weight)  # (B, 1, H, W)
            sq, ab = w * sq, w * ab
        rec_loss = sq.mean() + 0.1 * ab.mean()
        kl = 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1.0 - logvar.float()).mean()
        loss = rec_loss + self.cfg.kl_weight * kl
        psnr = 10 * torch.log10(4.0 / mse.detach().clamp_min(1e-10))  # range [-1, 1] -> peak^2 = 4
        return loss, {"mse": mse.item(), "kl": kl.item(), "psnr": psnr.item()}
