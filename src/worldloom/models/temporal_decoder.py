"""Temporal decoder: draws a latent frame with the previous frame on screen as a second input.

A per-frame VAE decoder redraws every frame from its latent alone, so what the latent does not hold
(fine floor texture, exact edges) is lost on every frame, even when nothing moved. Video tokenizers
in the field decode causally with past frames in view for this reason. Here that is a small
residual net on top of the frozen base decoder D:

    out = g * x_prev + (1 - g) * (D(z_t) + r)        # (B, 3, H, W)

with ``x_prev`` the frame shown one step before (a true context frame, or this decoder's own last
output) and r (residual) and g (a gate in [0, 1] per pixel and channel) predicted from D(z_t), D(z_prev) and
x_prev. g = 1 copies the last frame exactly, which per-frame decoding can never do; the gate
multiplies the residual too, so a saturated gate alone makes a pixel exact (a first version added
r outside the gate and never drew a still frame bit for bit). A gate past ``keep_snap`` counts as
saturated: a sigmoid never reaches 1, and its small leak drifted still pixels by a level a step. Where the view
moved, the net can carry x_prev's detail along (x_prev - D(z_prev) is the detail the latent lost).
The previous frame is the one *shown* (snapped to uint8, :func:`as_shown`), so an exact copy stays
exact over a still stretch.

Key choices:
- The base VAE (encoder, decoder, latent statistics) stays frozen, so the dynamics model's latents
  mean the same and a checkpoint without a temporal decoder behaves as before.
- Runs at H/2 on pixel-unshuffled inputs (like the VAE's own first and last layer) with a H/4 path
  for reach; zero-initialised output, so before training it is the base decoder with a small blend
  of the last frame (``gate_bias``: 1.8 %).
- Trained on the dynamics model's own rollouts (training/temporal_decoder.py): its inputs are what
  it sees when playing, not only clean latents of true frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import doc
from .vae import VAE, ResBlock, _stage


@dataclass
class TemporalDecoderConfig:
    width: int = doc(48, "channels at H/2")
    blocks: int = doc(2, "residual blocks at H/2 and at H/4 each")
    gate_bias: float = doc(-4.0, "initial gate logit (sigmoid(-4) = 0.018: starts close to the base decoder)")
    keep_snap: float = doc(0.95, "at inference a gate above this keeps its pixel exactly; 1 disables")

    def __post_init__(self) -> None:
        if self.width < 8 or self.width % 8:
            raise ValueError(f"temporal_decoder.width must be a positive multiple of 8 (GroupNorm groups), got {self.width}")
        if self.blocks < 0:
            raise ValueError(f"temporal_decoder.blocks must be >= 0, got {self.blocks}")
        if not 0.0 < self.keep_snap <= 1.0:
            raise ValueError(f"temporal_decoder.keep_snap must be in (0, 1], got {self.keep_snap}")


class TemporalDecoder(nn.Module):
    def __init__(self, cfg: TemporalDecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, nb = cfg.width, cfg.blocks
        w2 = (w * 2 + 7) // 8 * 8
        # Inputs at H/2: D(z_t), D(z_prev), x_prev, each pixel-unshuffled (3 * 4 = 12 channels).
        self.inp = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(36, w, 3, padding=1), _stage(w, nb))
        self.down = nn.Sequential(nn.Conv2d(w, w2, 3, stride=2, padding=1), _stage(w2, nb))
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w2, w, 3, padding=1))
        self.mid = ResBlock(w)
        self.out = nn.Sequential(nn.GroupNorm(8, w), nn.SiLU(), nn.Conv2d(w, 24, 3, padding=1), nn.PixelShuffle(2))
        nn.init.zeros_(self.out[-2].weight)
        with torch.no_grad():  # channels after PixelShuffle: 0-2 residual, 3-5 gate logits
            self.out[-2].bias.zero_()
            self.out[-2].bias.view(6, 4)[3:] = cfg.gate_bias

    def forward(self, base: torch.Tensor, base_prev: torch.Tensor, x_prev: torch.Tensor) -> torch.Tensor:
        """base = D(z_t), base_prev = D(z_prev), x_prev: (B, 3, H, W) in [-1, 1] -> frame t (B, 3, H, W)."""
        h = self.inp(torch.cat([base, base_prev, x_prev], dim=1))  # (B, w, H/2, W/2)
        h = self.mid(h + self.up(self.down(h)))
        r, g = self.out(h).chunk(2, dim=1)  # (B, 3, H, W) each
        keep = torch.sigmoid(g)
        if not self.training:
            # A nearly closed gate still leaks (1 - keep) of a residual that can be large (a detail the latent
            # lacks), and the leak adds up step after step on a still pixel; past keep_snap it is exactly 1.
            # Not in training: there the leak's cost keeps pushing still pixels' gates towards 1, well past
            # the threshold (a straight-through snap in training stopped them at it: 2.6 % exact frames, not 4.3).
            keep = torch.where(keep > self.cfg.keep_snap, torch.ones_like(keep), keep)
        return x_prev + (1 - keep) * (base + r - x_prev)  # keep = 1: x_prev exactly, whatever r is


def as_shown(x: torch.Tensor) -> torch.Tensor:
    """Frames (..., 3, H, W) in [-1, 1] snapped to the uint8 grid they are shown on.

    The next step draws after this, not the raw output: a still scene then stays exactly still
    instead of drifting by sub-level amounts that rounding hides for a while and then shows.
    """
    return VAE.to_float(VAE.to_uint8(x))
