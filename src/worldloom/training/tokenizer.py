"""Tokenizer training: the VAE on random frames of a dataset, then latent standardisation.

``train_tokenizer`` runs the shared loop, measures per-channel latent mean/std on data (so the
dynamics model sees unit-variance latents), evaluates reconstruction PSNR on held-out frames and
writes a ``kind: tokenizer`` checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..checkpoint import carry_train_logs, save_checkpoint
from ..config import to_dict
from ..data.format import Dataset
from ..models.vae import VAE, VAEConfig
from .loop import Trainer, TrainConfig


class FrameSampler:
    """Uniformly random frames of a dataset, read from its memory-mapped episodes."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self.lengths = np.array([len(ds[i]) for i in range(len(ds))])
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)])

    def sample(self, gen: torch.Generator, n: int) -> np.ndarray:
        idx = torch.randint(int(self.starts[-1]), (n,), generator=gen).numpy()
        ep = np.searchsorted(self.starts, idx, side="right") - 1
        return np.stack([self.ds[int(e)].frames[int(i - self.starts[e])] for e, i in zip(ep, idx)])  # (n, H, W, 3)


class TokenizerTask:
    items_name = "img"

    def __init__(self, vae: VAE, ds: Dataset) -> None:
        self.model = vae
        self.frames = FrameSampler(ds)

    def batch(self, gen: torch.Generator, batch_size: int, device: torch.device) -> torch.Tensor:
        return VAE.to_float(torch.from_numpy(self.frames.sample(gen, batch_size))).to(device)

    def loss(self, model: nn.Module, batch: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return model(batch)  # VAE.forward is its loss, so DDP's gradient hooks see the call

    def items(self, batch: torch.Tensor) -> int:
        return batch.shape[0]


@torch.no_grad()
def fit_latent_stats(vae: VAE, sampler: FrameSampler, n: int = 2048, seed: int = 1) -> None:
    """Set the VAE's latent shift/scale to the per-channel mean/std of posterior means."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.from_numpy(sampler.sample(gen, n))
    zs = [vae.encode_dist(VAE.to_float(frames[i : i + 256]))[0] for i in range(0, n, 256)]
    z = torch.cat(zs)  # (n, C, h, w)
    vae.latent_shift.copy_(z.mean(dim=(0, 2, 3)))
    vae.latent_scale.copy_(z.std(dim=(0, 2, 3)).clamp_min(1e-3))


@torch.no_grad()
def reconstruction_psnr(vae: VAE, ds: Dataset, n: int = 1024, seed: int = 2) -> float:
    """Mean per-frame PSNR (dB, uint8 range) of encode -> decode on ``n`` random frames of ``ds``."""
    frames = torch.from_numpy(FrameSampler(ds).sample(torch.Generator().manual_seed(seed), n))
    out = []
    for i in range(0, n, 128):
        f = frames[i : i + 128]
        rec = vae.decode(vae.encode(f))
        mse = (rec.float() - f.float()).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-3)
        out.append(10 * torch.log10(255.0**2 / mse))
    return float(torch.cat(out).mean())


@dataclass
class TokenizerResult:
    path: Path
    psnr: float
    train_s: float


def train_tokenizer(data: str | Path, out: str | Path, vae_cfg: VAEConfig, train_cfg: TrainConfig,
                    *, heldout: str | Path | None = None, resume: bool = False, progress: bool = True,
                    recipe: str = "", run_dir: str | Path | None = None,
                    init: str | Path | None = None) -> TokenizerResult:
    """Train a tokenizer on ``data``'s frames and write it to ``out``; ``init`` (a tokenizer or world model
    of the same architecture) gives the starting weights (a fine-tune, e.g. with another loss weighting)."""
    ds = Dataset.open(data)
    if tuple(ds.meta["frame_shape"]) != (vae_cfg.frame_size, vae_cfg.frame_size, 3):
        raise ValueError(f"{data}: frames are {ds.meta['frame_shape']}, tokenizer expects {vae_cfg.frame_size}x{vae_cfg.frame_size}x3")
    torch.manual_seed(train_cfg.seed)
    vae0 = VAE(vae_cfg)
    if init is not None:
        from .init import load_tokenizer

        try:
            vae0.load_state_dict(load_tokenizer(init)[0].state_dict())
        except RuntimeError as e:  # a --vae-* shape field that differs from the init's
            raise ValueError(f"--init {init}: its VAE has another architecture than {to_dict(vae_cfg)}: {e}") from None
    task = TokenizerTask(vae0, ds)
    trainer = Trainer(task, train_cfg, run_dir or Path(out) / "run", progress=progress)
    t0 = time.time()
    trainer.fit(resume)
    if trainer.rank != 0:
        return TokenizerResult(Path(out), float("nan"), trainer.elapsed)
    vae = trainer.ema.cpu().float().eval()
    fit_latent_stats(vae, task.frames)
    psnr = reconstruction_psnr(vae, Dataset.open(heldout) if heldout else ds)
    config: dict[str, Any] = {
        "kind": "tokenizer", "vae": to_dict(vae_cfg), "train": to_dict(train_cfg),
        "action_spec": ds.action_spec.to_dict(), "data": {"path": str(data), "env": ds.env, "n_frames": ds.n_frames},
        "metrics": {"recon_psnr_db": round(psnr, 2), "heldout": str(heldout) if heldout else None},
        "train_seconds": round(trainer.elapsed, 1), "recipe": recipe, "init": str(init) if init else None,
    }
    card = (f"# Tokenizer\n\nConvolutional VAE, {vae_cfg.frame_size}px -> {vae_cfg.latent_channels}x"
            f"{vae_cfg.latent_size}x{vae_cfg.latent_size}.\n\n- data: `{data}` ({ds.n_frames} frames, env `{ds.env}`)\n"
            f"- steps: {train_cfg.steps}, batch {train_cfg.batch_size}, training time {trainer.elapsed / 60:.1f} min\n"
            f"- reconstruction PSNR: {psnr:.2f} dB ({'held-out' if heldout else 'training'} frames)\n"
            f"- recipe: `{recipe}`\n" + (f"- fine-tuned from `{init}`\n" if init else "")
            + (f"- detail weight {vae_cfg.detail_weight:g} (models/vae.py: detail_weights)\n" if vae_cfg.detail_weight else ""))
    save_checkpoint(out, config, {"vae": vae}, card)
    carry_train_logs(out, stage=("tokenizer", trainer.log_path))
    return TokenizerResult(Path(out), psnr, time.time() - t0)
