"""Temporal decoder: draws a latent frame with the previous frame on screen as a second input.

A per-frame VAE decoder redraws every frame from its latent alone, so what the latent does not hold
(fine floor texture, exact edges) is lost on every frame, even when nothing moved. Video tokenizers
in the field decode causally with past frames in view for this reason. Here that is a small
residual net on top of the frozen base decoder D:

    out = sum_k g_k * s_k + (1 - sum_k g_k) * (D(z_t) + r)        # (B, 3, H, W)

with r (residual) and the gates g_k (a softmax with the draw, per pixel and channel) predicted from
D(z_t), D(z_prev) and the sources s_k the pixel can be copied from:
- ``x_prev``, the frame shown one step before (a true context frame, or this decoder's own last
  output). Copying it exactly is what per-frame decoding can never do for a still scene;
- ``warp(x_prev, d)`` (``motion_shift`` > 0): the same frame moved by the view shift d that block
  matching (:mod:`worldloom.shift`) reads between D(z_prev) and D(z_t), a pair of like sharpness.
  Video codecs call this motion compensation: where the camera scrolled, the background is the
  last frame moved, bit for bit, and only what scrolled in and what moved by itself needs drawing.
  Without it (the seventh and eighth sessions' decoders) the net carried x_prev's detail along
  by convolution, and where the dynamics drew a half-hearted step it often kept the old frame:
  the view froze where the base decode had moved (4 of the 234 moving steps over h1-8 that the
  base decodes followed and the decoder did not, 2026-11-29). d is read from the model's own
  frames, never from the truth, so it moves only as far as the dynamics did.
The gates also multiply the residual, so a saturated copy alone makes a pixel exact (a first
version added r outside the gate and never drew a still frame bit for bit). A total copy share past
``keep_snap`` counts as saturated: a sigmoid never reaches 1, and its small leak drifted still
pixels by a level a step. With no motion the moved frame *is* x_prev, so a copy split between the
two sources stays exact. The previous frame is the one *shown* (snapped to uint8, :func:`as_shown`),
so an exact copy stays exact over a still stretch.

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

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from ..config import doc
from ..shift import estimate_shift_float, warp
from .vae import VAE, ResBlock, _stage

ENV_PRIOR = -2  # motion_mask_half: take the env's registered agent_half_px (envs.registry.priors)


@dataclass
class TemporalDecoderConfig:
    width: int = doc(48, "channels at H/2")
    blocks: int = doc(2, "residual blocks at H/2 and at H/4 each")
    gate_bias: float = doc(-4.0, "initial gate logit (sigmoid(-4) = 0.018: starts close to the base decoder)")
    keep_snap: float = doc(0.95, "at inference a gate above this keeps its pixel exactly; 1 disables")
    motion_shift: int = doc(8, "search range (px) of motion compensation: the last frame moved by the view shift "
                               "read between the base decodes is a second frame to copy from; 0 disables")
    motion_mask_half: int = doc(ENV_PRIOR, "half-size (px) of the view-centre box the view-shift estimate leaves out "
                                           "(an agent the camera follows); -1: none; -2: the env's agent_half_px prior, "
                                           "resolved when trained or loaded (with_env_prior)")

    def __post_init__(self) -> None:
        if self.width < 8 or self.width % 8:
            raise ValueError(f"temporal_decoder.width must be a positive multiple of 8 (GroupNorm groups), got {self.width}")
        if self.blocks < 0:
            raise ValueError(f"temporal_decoder.blocks must be >= 0, got {self.blocks}")
        if not 0.0 < self.keep_snap <= 1.0:
            raise ValueError(f"temporal_decoder.keep_snap must be in (0, 1], got {self.keep_snap}")
        if self.motion_shift < 0:
            raise ValueError(f"temporal_decoder.motion_shift must be >= 0 (0: off), got {self.motion_shift}")
        if self.motion_mask_half < ENV_PRIOR:
            raise ValueError(f"temporal_decoder.motion_mask_half must be >= -2, got {self.motion_mask_half}")

    def with_env_prior(self, env_id: str | None) -> "TemporalDecoderConfig":
        """This config with ``motion_mask_half`` taken from ``env_id``'s registered prior where it says -2."""
        if self.motion_mask_half != ENV_PRIOR:
            return self
        from ..envs.registry import agent_half_px

        return replace(self, motion_mask_half=agent_half_px(env_id))

    @property
    def sources(self) -> int:
        """Frames a pixel can be copied from: the last shown frame, and its motion-compensated copy."""
        return 2 if self.motion_shift else 1


class TemporalDecoder(nn.Module):
    def __init__(self, cfg: TemporalDecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, nb = cfg.width, cfg.blocks
        w2 = (w * 2 + 7) // 8 * 8
        k = cfg.sources
        # Inputs at H/2: D(z_t), D(z_prev) and the k copy sources, each pixel-unshuffled (3 * 4 = 12 channels).
        self.inp = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12 * (2 + k), w, 3, padding=1), _stage(w, nb))
        self.down = nn.Sequential(nn.Conv2d(w, w2, 3, stride=2, padding=1), _stage(w2, nb))
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w2, w, 3, padding=1))
        self.mid = ResBlock(w)
        self.out = nn.Sequential(nn.GroupNorm(8, w), nn.SiLU(), nn.Conv2d(w, 12 * (1 + k), 3, padding=1), nn.PixelShuffle(2))
        nn.init.zeros_(self.out[-2].weight)
        with torch.no_grad():  # channels after PixelShuffle: 0-2 residual, then 3 gate logits per source
            self.out[-2].bias.zero_()
            self.out[-2].bias.view(3 * (1 + k), 4)[3:] = cfg.gate_bias

    def forward(self, base: torch.Tensor, base_prev: torch.Tensor, x_prev: torch.Tensor) -> torch.Tensor:
        """base = D(z_t), base_prev = D(z_prev), x_prev: (B, 3, H, W) in [-1, 1] -> frame t (B, 3, H, W)."""
        src = [x_prev]
        if self.cfg.motion_shift:  # the view shift the dynamics drew, read where both frames are alike (base decodes)
            if self.cfg.motion_mask_half == ENV_PRIOR:
                raise ValueError("temporal_decoder.motion_mask_half is -2 (the env's prior) but was never resolved: "
                                 "build the decoder from TemporalDecoderConfig.with_env_prior(env)")
            src.append(warp(x_prev, estimate_shift_float(base_prev, base, self.cfg.motion_shift, self.cfg.motion_mask_half)))
        h = self.inp(torch.cat([base, base_prev, *src], dim=1))  # (B, w, H/2, W/2)
        h = self.mid(h + self.up(self.down(h)))
        o = self.out(h)  # (B, 3 + 3k, H, W)
        r, logits = o[:, :3], o[:, 3:].unflatten(1, (len(src), 3))  # (B, 3, H, W), (B, k, 3, H, W)
        # Softmax over copying from each source and drawing (a fixed logit 0); with one source that is a sigmoid
        # keep gate, computed as one so that decoders trained that way draw the same frames bit for bit.
        p = (torch.sigmoid(logits) if len(src) == 1
             else torch.cat([logits, torch.zeros_like(logits[:, :1])], 1).softmax(1)[:, :-1])  # (B, k, 3, H, W)
        copy = p.sum(1)  # (B, 3, H, W)
        if not self.training:
            # A nearly closed gate still leaks (1 - copy) of a residual that can be large (a detail the latent
            # lacks), and the leak adds up step after step on a still pixel; past keep_snap it copies exactly.
            # Not in training: there the leak's cost keeps pushing still pixels' gates towards 1, well past
            # the threshold (a straight-through snap in training stopped them at it: 2.6 % exact frames, not 4.3).
            snap = copy > self.cfg.keep_snap
            p = torch.where(snap[:, None], p / copy[:, None], p)
            copy = torch.where(snap, torch.ones_like(copy), copy)
        # Written from x_prev so that a full copy of it (or of a source equal to it) is x_prev exactly.
        out = x_prev + (1 - copy) * (base + r - x_prev)
        for i in range(1, len(src)):
            out = out + p[:, i] * (src[i] - x_prev)
        return out


def as_shown(x: torch.Tensor) -> torch.Tensor:
    """Frames (..., 3, H, W) in [-1, 1] snapped to the uint8 grid they are shown on.

    The next step draws after this, not the raw output: a still scene then stays exactly still
    instead of drifting by sub-level amounts that rounding hides for a while and then shows.
    """
    return VAE.to_float(VAE.to_uint8(x))
