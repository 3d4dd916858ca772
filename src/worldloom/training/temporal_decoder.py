"""Temporal-decoder training: teach a world model to draw its frames with the last shown frame in view.

``train_temporal_decoder`` takes a finished world model, rolls it out on a dataset exactly as it
plays (its own sampler, precision and KV cache, true actions, context from the data), and trains a
:class:`~worldloom.models.temporal_decoder.TemporalDecoder` to turn each generated latent into the
true frame, given the frame shown one step before. It writes a copy of the world model with the
decoder added; the tokenizer and the dynamics are untouched.

Key choices:
- **The decoder's own past, not the truth, as its previous frame.** At play time the previous frame
  is what the decoder drew a step ago, errors and all. A replay table holds, for every rollout step,
  the decoder's latest output for it (as shown: on the uint8 grid); a trained step writes its output
  into the next step's entry. The table starts from the base decoder's frames (and the true last
  context frame at step 0), so it follows the decoder as it learns without unrolling through time;
  with the defaults an entry is rewritten every ~600 steps.
- **Still openings are fixed points, and oversampled** (``still_share``). With only its replayed
  past in view the decoder never learned to keep a still frame: that past was never exact, so
  copying it scored no better than drawing afresh (the keep gate stayed at 0.14 on still first
  steps, 0.12 on moving ones; no held-out frame came out exact). So every step whose truth so far
  has repeated the last context frame (and every first step) is drawn after that true frame, as an
  exact-keeping decoder would see it, and such steps make ``still_share`` of each batch. Drawing
  *every* step after the true previous frame instead (half the batch) taught plain copy-last: one
  step after the truth, copying wins, and the held-out rollouts froze (0 % following).
- Rollouts are generated once up front (seconds per hundred): the dynamics model is frozen, so its
  latents do not go stale. ``--resume`` restarts the replay table from the base decodes.
- **Loss: per-frame log-MSE** (``loss="psnr"``), i.e. minus the mean per-frame PSNR that the
  held-out eval averages, floored at ``psnr_cap_db``; plus 0.1 L1. A first run with the tokenizer's
  plain MSE (one mean over all pixels of a batch) spent itself on the worst frames (far horizons,
  new ground scrolling in), where the decoder cannot help, and lost 2.5 dB at h = 1: the frames it
  *can* draw better (a still scene: copy it exactly) weigh nothing in a pooled MSE. ``loss="mse"``
  keeps that variant.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import doc, to_dict
from ..data.format import Dataset
from ..models.temporal_decoder import TemporalDecoder, TemporalDecoderConfig, as_shown
from ..models.vae import VAE
from .loop import Trainer, TrainConfig


@dataclass
class TemporalDecoderRecipe:
    rollouts: int = doc(800, "rollouts of the world model on the data, each from a random context")
    horizon: int = doc(24, "frames generated per rollout")
    context: int = doc(4, "true frames (and actions) each rollout starts from")
    reset_share: float = doc(0.3, "share of rollouts whose context starts at an episode's first frame")
    loss: str = doc("psnr", choices=("psnr", "mse"), text="psnr: mean per-frame log-MSE (minus mean PSNR) | mse: MSE pooled over the batch")
    psnr_cap_db: float = doc(60.0, "floor of the per-frame log-MSE, in dB (about where rounding to uint8 makes a frame exact)")
    l1_weight: float = doc(0.1, "weight of the L1 term next to the main loss")
    still_share: float = doc(0.15, "share of training frames from still openings (drawn after the true context frame)")
    batch: int = doc(20, "rollouts generated together")
    seed: int = doc(0, "seed of the rollout contexts and the sampling noise")

    def __post_init__(self) -> None:
        for name in ("rollouts", "horizon", "context", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"recipe.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("reset_share", "still_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"recipe.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.loss not in ("psnr", "mse"):
            raise ValueError(f"recipe.loss must be 'psnr' or 'mse', got {self.loss!r}")


@torch.inference_mode()
def make_rollouts(model: Any, ds: Dataset, recipe: TemporalDecoderRecipe) -> tuple[np.ndarray, torch.Tensor]:
    """Roll ``model`` out from random contexts of ``ds`` under the true actions.

    Returns (frames (S, 1 + N, H, W, 3) uint8: the last context frame, then the N true frames;
    latents (S, N, C, h, w) fp16: what the model generated for those N frames).
    """
    from ..runtime.simulator import Simulator

    C, N = recipe.context, recipe.horizon
    long_enough = [i for i in range(len(ds)) if ds.lengths[i] >= C + N]
    if not long_enough:
        raise ValueError(f"{ds.path}: no episode has the {C + N} frames a rollout needs (context {C} + horizon {N})")
    rng = np.random.default_rng(recipe.seed)
    frames, latents = [], []
    for s in range(0, recipe.rollouts, recipe.batch):
        b = min(recipe.batch, recipe.rollouts - s)
        eps = rng.choice(long_enough, b)
        starts = [0 if rng.random() < recipe.reset_share else int(rng.integers(0, ds.lengths[e] - C - N + 1)) for e in eps]
        clips = [ds[int(e)] for e in eps]
        fr = np.stack([np.array(c.frames[st : st + C + N]) for c, st in zip(clips, starts)])  # (b, C + N, H, W, 3)
        ac = np.stack([np.array(c.actions[st : st + C + N]) for c, st in zip(clips, starts)]).astype(np.int64)
        sim = Simulator(model, batch=b, seed=recipe.seed + s)
        sim.reset(fr[:, :C], ac[:, :C])
        z = torch.stack([sim.step_latent(ac[:, C + i]).float() for i in range(N)], 1)  # (b, N, C, h, w)
        frames.append(fr[:, C - 1 :])
        latents.append(z.half().cpu())
    return np.concatenate(frames), torch.cat(latents)


class TemporalDecoderTask:
    items_name = "frames"

    def __init__(self, vae: VAE, frames: np.ndarray, latents: torch.Tensor, cfg: TemporalDecoderConfig,
                 recipe: TemporalDecoderRecipe) -> None:
        self.model = TemporalDecoder(cfg)
        self.recipe = recipe
        self.eps = 4.0 * 10 ** (-recipe.psnr_cap_db / 10)  # MSE in [-1, 1] units at the cap (peak-to-peak 2)
        S, N = latents.shape[:2]
        self.S, self.N = S, N
        dev = next(vae.parameters()).device
        with torch.inference_mode():  # (S, N + 1, 3, H, W): base decodes of [last context, generated...]
            z0 = torch.cat([vae.encode(torch.from_numpy(frames[i : i + 256, 0]).to(dev)).float().cpu()
                            for i in range(0, S, 256)])  # (S, C, h, w)
            flat = torch.cat([z0[:, None], latents.float()], 1).flatten(0, 1)
            base = torch.cat([vae.decode_float(flat[i : i + 256].to(dev)).half().cpu() for i in range(0, len(flat), 256)])
        self.base = base.view(S, N + 1, *base.shape[1:])
        self.truth = VAE.to_float(torch.from_numpy(frames[:, 1:])).half()  # (S, N, 3, H, W)
        # Replay table: the previous frame each step is drawn after. Step 0 follows the true last context frame.
        self.shown = torch.cat([VAE.to_float(torch.from_numpy(frames[:, :1])).half(), as_shown(self.base[:, 1:N].float()).half()], 1)
        # Still openings (S, N): step i follows the true last context frame if every true frame before it repeated it.
        repeats = (frames[:, 1:] == frames[:, :1]).reshape(S, N, -1).all(-1)  # (S, N)
        self.fixed = torch.from_numpy(np.concatenate([np.ones((S, 1), bool), np.cumprod(repeats[:, :-1], 1).astype(bool)], 1))
        self.shown[self.fixed] = self.shown[:, :1].expand(-1, N, -1, -1, -1)[self.fixed]
        self.fixed_idx = self.fixed.nonzero()  # (K, 2): (rollout, step)

    def batch(self, gen: torch.Generator, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
        s = torch.randint(self.S, (batch_size,), generator=gen)
        i = torch.randint(self.N, (batch_size,), generator=gen)
        opening = torch.rand(batch_size, generator=gen) < self.recipe.still_share  # (B,) drawn from still openings
        k = self.fixed_idx[torch.randint(len(self.fixed_idx), (batch_size,), generator=gen)]  # (B, 2)
        s, i = torch.where(opening, k[:, 0], s), torch.where(opening, k[:, 1], i)
        return {"s": s, "i": i, "base": self.base[s, i + 1].float().to(device),
                "base_prev": self.base[s, i].float().to(device), "shown": self.shown[s, i].float().to(device),
                "truth": self.truth[s, i].float().to(device)}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        y = model(batch["base"], batch["base_prev"], batch["shown"])  # (B, 3, H, W)
        per_frame = (y.float() - batch["truth"]).pow(2).flatten(1).mean(1)  # (B,)
        mse = per_frame.mean()
        main = per_frame.add(self.eps).log().mean() if self.recipe.loss == "psnr" else mse
        loss = main + self.recipe.l1_weight * F.l1_loss(y.float(), batch["truth"])
        with torch.no_grad():  # this output is what the next step of its rollout is drawn after
            s, i = batch["s"], batch["i"]
            # Still openings keep the true frame; the last step has no successor.
            nxt = (i + 1 < self.N) & ~self.fixed[s, (i + 1).clamp(max=self.N - 1)]
            self.shown[s[nxt], i[nxt] + 1] = as_shown(y.detach()[nxt.to(y.device)].float()).half().cpu()
            psnr = 10 * torch.log10(4.0 / per_frame.detach().add(self.eps)).mean()  # mean per-frame, as the eval
        return loss, {"mse": mse.item(), "psnr": psnr.item()}

    def items(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["s"].shape[0])


# ~20 min on 2 cores (0.5 s per step of 32 frames): a fresh module, so a normal peak rate and warm-up.
TD_TRAIN = TrainConfig(steps=2000, batch_size=32, lr=1e-3, warmup=50, ema_decay=0.995, ckpt_every=250, log_every=25)


@dataclass
class TemporalDecoderResult:
    path: Path
    train_s: float
    rollout_s: float
    last: dict[str, float]


def train_temporal_decoder(checkpoint: str | Path, data: str | Path, out: str | Path, cfg: TemporalDecoderConfig,
                           recipe: TemporalDecoderRecipe, train_cfg: TrainConfig, *, resume: bool = False,
                           progress: bool = True, recipe_cmd: str = "",
                           run_dir: str | Path | None = None) -> TemporalDecoderResult:
    """Add a trained temporal decoder to the world model ``checkpoint``; writes the result to ``out``."""
    from ..checkpoint import CARD, WEIGHTS, carry_train_logs, drop_metrics_sections, read_checkpoint, save_weights
    from ..config import atomic_write_bytes, atomic_write_json
    from ..runtime.loading import load
    from ..hardware import setup_cpu

    setup_cpu(train_cfg.threads)
    model = load(checkpoint)  # as it plays: its own precision and sampler
    if model.tdec is not None:
        raise ValueError(f"{checkpoint}: already has a temporal decoder; start from the world model without one")
    ds = Dataset.open(data)
    if ds.action_spec.n_axes:  # its rollouts below step discrete actions only
        raise ValueError(f"temporal decoder: {data} has continuous axes {[a.name for a in ds.action_spec.axes]}; its "
                         "rollouts take discrete actions only for now")
    if ds.action_spec.n != model.action_spec.n:
        raise ValueError(f"{data} has {ds.action_spec.n} actions, {checkpoint} was trained on {model.action_spec.n}")
    if tuple(ds.frame_shape) != (model.frame_size, model.frame_size, 3):
        raise ValueError(f"{data}: frames are {list(ds.frame_shape)}, {checkpoint} makes {model.frame_size}x{model.frame_size}x3")
    t0 = time.time()
    frames, latents = make_rollouts(model, ds, recipe)
    rollout_s = time.time() - t0
    src_dir, config, tensors = read_checkpoint(checkpoint)
    cfg = cfg.with_env_prior(config.get("env"))  # the agent box the view-shift estimate leaves out, from the env
    torch.manual_seed(train_cfg.seed)
    # The decoder's inputs from the base VAE as it plays (its serving precision, e.g. bf16), not an fp32 copy.
    task = TemporalDecoderTask(model.vae, frames, latents, cfg, recipe)
    del frames, latents
    trainer = Trainer(task, train_cfg, run_dir or Path(out) / "run", progress=progress)
    last = trainer.fit(resume)
    if trainer.rank == 0:
        config = {k: v for k, v in config.items() if k not in ("metrics", "speed_applied")}
        config["temporal_decoder"] = to_dict(cfg)
        config["temporal_decoder_train"] = {
            "from": str(checkpoint), "data": str(data), "recipe": to_dict(recipe), "train": to_dict(train_cfg),
            "base_vae_dtype": str(next(model.vae.parameters()).dtype).removeprefix("torch."),
            "train_seconds": round(trainer.elapsed, 1), "rollout_seconds": round(rollout_s, 1), "recipe_cmd": recipe_cmd}
        ema = trainer.ema.cpu().float()
        n_params = sum(p.numel() for p in ema.parameters())
        tensors.update({f"tdec.{k}": v.to(torch.float16) if v.is_floating_point() else v for k, v in ema.state_dict().items()})
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        src_card = src_dir / CARD
        # The source's measured sections are its numbers, not this model's: re-run the evals on the output.
        card = drop_metrics_sections(src_card.read_text() if src_card.exists() else "# World model\n").rstrip() + "\n" + (
            f"\n## Temporal decoder\n\n{n_params / 1e6:.2f} M parameters (models/temporal_decoder.py), trained on "
            f"{recipe.rollouts} rollouts x {recipe.horizon} frames of this model on `{data}`: {trainer.step} steps x "
            f"{train_cfg.batch_size} frames, {trainer.elapsed / 60:.1f} min (+ {rollout_s / 60:.1f} min of rollouts).\n\n"
            f"- recipe: `{recipe_cmd}`\n")
        save_weights(out / WEIGHTS, tensors, metadata={"format": "worldloom"})
        atomic_write_json(out / "config.json", config)
        atomic_write_bytes(out / CARD, card.encode())
        carry_train_logs(out, (src_dir,), ("temporal_decoder", trainer.log_path))
        from ..runtime.context import copy_context

        copy_context(src_dir, out)
    return TemporalDecoderResult(Path(out), trainer.elapsed, rollout_s, last)
