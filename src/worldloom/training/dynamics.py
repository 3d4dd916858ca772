"""Dynamics training: the causal DiT on latent clips, with flow matching and diffusion forcing.

The dataset is encoded once by the (frozen) tokenizer into latents held in memory, or read from its
memory-mapped cache (``worldloom encode``, training/latents.py); clips of T frames are drawn at random. Each step:

- every target frame gets its own noise level t (diffusion forcing) from a shifted logit-normal;
- ``context="clean"`` (default): a second stream holds the same frames lightly noised (context-noise
  augmentation: t_ctx = 0 for half the frames, else U(0, ctx_noise_max)); target frame i attends to
  context frames < i, exactly as at run time against the KV cache, so every frame of the clip is a
  training target with an inference-like past. ``context="df"``: one block-causal stream where the
  past is as noisy as its own t (classic diffusion forcing);
- actions are replaced by the "no action" id with probability ``action_dropout`` per frame, which
  allows action guidance and training on action-free video;
- ``object_weight`` (off by default) weighs up latent cells that the previous frame, moved by its best
  whole-cell shift, does not explain: objects moving against the view, which whole-frame MSE lets the
  scrolling floor drown. In 500-step arena fine-tunes it did not make the model move its balls
  (docs/BENCHMARKS.md, "Objects"), so no recipe turns it on;
- ``clip_focus`` (off by default) draws that share of the clips where objects move against the
  background (training/focus.py). Four times the moving-ball frames in a 1,000-step arena fine-tune
  left ball permanence where a plain fine-tune put it (33.0 against 33.3 % over h1-8), so no recipe
  turns it on either;
- ``memory_erase`` (off by default; for memory training) paints one kind of object out of a share of the
  clips' frames but the last target (training/erase.py): a clean window that lost a landmark, which a
  model trained on true windows never meets and its memory must then fill;
- ``memory_ghost_weight`` (off by default) weighs up the cells where a placed memory frame shows a ball that
  has since moved (training/ghosts.py), which a gate taught to copy landmarks back copies as readily;
- ``ctx_blind`` (off by default; for memory training) noises a share of the clips' whole window
  heavily while their memory frames stay clean. A model trained with place memory and only the light
  augmentation ignores its memory: given the true target itself as a memory frame, its one-step
  frame gains 0.01 dB (tools/memory_copy_probe.py), since a clean window already shows the scene.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import carry_train_logs, resolve, save_checkpoint
from ..config import doc, to_dict
from ..data.format import Dataset
from ..diffusion.schedules import add_noise, sample_train_t, velocity_target, x0_from_v
from ..models.dit import CausalDiT, DynamicsConfig
from ..models.dit_memory import MemoryFrames
from ..models.mem_copy import align
from ..hardware import setup_cpu
from ..memory.odometry import odometry_entry
from .init import init_from, load_tokenizer
from .latents import Episodes, clip, dataset_latents
from .loop import Trainer, TrainConfig
from .erase import ErasedClips, erase_clips
from .cell_losses import flow_pin_loss, object_weights
from .ghosts import GhostMarks, ghost_cells, ghost_marks, weigh_last
from .memory import KINDS as MEMORY_KINDS, MemorySampler, memory_inputs, stale_cells


@dataclass
class DynamicsRecipe:
    clip_len: int = doc(12, "frames per training clip")
    context: str = doc("clean", choices=("clean", "df"), text="clean (two streams: clean past, noised targets) | df (one stream)")
    t_shift: float = doc(1.0, "shift of the training noise-level distribution (>1: more noise)")
    ctx_noise_max: float = doc(0.2, "largest context-noise level used for augmentation")
    ctx_noise_prob: float = doc(0.5, "fraction of context frames that get augmentation noise")
    action_dropout: float = doc(0.1, "per-frame probability of replacing the action by 'no action'")
    loss: str = doc("v", choices=("v", "x0"), text="regression target: 'v' (velocity MSE, weights low noise most) or 'x0' (clean-frame MSE, "
                         "weights every noise level alike, which is what 1-4 step sampling needs)")
    object_weight: float = doc(0.0, "extra loss weight on latent cells that the previous frame, moved by its best "
                                    "whole-cell shift, does not explain (objects moving against the view); 0 = "
                                    "whole-frame loss")
    clip_focus: float = doc(0.0, "share of each batch's clips drawn in proportion to the objects that move "
                                 "against the background in them (from the data's state; training/focus.py); "
                                 "0 = every window equally likely")
    clip_focus_kinds: str = doc("", "object kinds clip_focus counts, comma-separated (e.g. 'ball'); empty = every kind")
    object_tau: float = doc(0.5, "residual (mean square over channels of standardised latents) at which a cell "
                                 "gets the whole extra weight; smaller residuals get a linear share")
    object_shift: int = doc(2, "largest whole-cell shift tried when explaining a frame by the one before it")
    flow_pin: float = doc(0.0, "weight of an L1 loss pulling a 'warp' head's flow to the whole-cell shift that explains "
                               "the true frame by the one before it, on the cells that shift explains (residual below "
                               "object_tau); 0 = off")
    flow_pin_ignore: int = doc(0, "half-side in cells of a central square left out of that shift's vote (a camera-following "
                                  "world's agent stays put while the view scrolls: 2 for the arena)")
    memory: str = doc("none", choices=("none", *MEMORY_KINDS), text="long-term memory frames in every clip, drawn as "
                      "the run-time policy of that name draws them (training/memory.py); none = the window alone")
    memory_frames: int = doc(2, "memory frames per clip (with memory)")
    memory_drop: float = doc(0.25, "chance each memory slot is left empty (the model must also work without)")
    ctx_blind: float = doc(0.0, "chance a clip's whole window context is noised to one level drawn in [ctx_blind_min, 1] "
                                "while its memory frames keep their light noise: then only memory shows the scene, "
                                "which a model must learn to read (0 = off; clean context only)")
    ctx_blind_min: float = doc(0.5, "lowest noise level of a blinded window")
    memory_jitter: float = doc(0.0, "place memory: chance a memory frame is placed 1-2 latent cells off on each axis, as a "
                                    "run-time pose that drifted, so a copy gate learns to check the placement (0 = exact)")
    memory_erase: float = doc(0.0, "with memory: chance a clip's objects of memory_erase_kind are painted out of every frame "
                                   "but the last target, as a rollout's window loses them, so they must come from memory "
                                   "(training/erase.py; 0 = off)")
    memory_erase_kind: str = doc("landmark", "object kind memory_erase paints out (the state's <kind>_pos_view, "
                                             "<kind>_radius and <kind>_color)")
    memory_erase_weight: float = doc(1.0, "loss weight of the last target's cells that held an erased object its memory "
                                          "covers (a few cells a clip, which the whole-frame loss barely feels)")
    memory_erase_fade: float = doc(1.0, "least strength of an erasure: each erased clip blends its painted-out latents in at a "
                                        "strength drawn uniformly from [this, 1], so the window shows the object faded, as a "
                                        "rollout's does, not only gone (1 = painted out whole)")
    memory_stale_weight: float = doc(1.0, "with memory: loss weight of the last target's cells where the placed memory frame "
                                          "disagrees with the true frame before it (an object moved since, a misplaced "
                                          "frame): what a copy gate must not copy (training/memory.stale_cells)")
    memory_ghost_kind: str = doc("ball", "object kind memory_ghost_weight watches (the state's <kind>_pos_view, _radius, _color)")
    memory_ghost_weight: float = doc(1.0, "with memory: loss weight of the last target's cells where a placed memory frame shows "
                                          "an object of memory_ghost_kind the target no longer has there (it moved since): what "
                                          "memory must not copy back (training/ghosts.py; 1 = off)")


class ClipSampler:
    """Random clips of ``clip_len`` frames, each window equally likely, from episodes in memory or in a
    memory-mapped latent cache (read when drawn). With ``focus`` > 0 and per-window ``weights`` (training/
    focus.py), that share of the clips is drawn with probability proportional to the weights instead."""

    def __init__(self, latents: Episodes, actions: list[torch.Tensor], clip_len: int,
                 axes: list[torch.Tensor] | None = None, focus: float = 0.0,
                 weights: list[torch.Tensor] | None = None) -> None:
        keep = [i for i, z in enumerate(latents) if len(z) >= clip_len]
        if not keep:
            raise ValueError(f"no episode has {clip_len} frames")
        self.clip_len, self.keep = clip_len, keep  # keep[i]: the index in ``latents`` of kept episode i
        self.latents = [latents[i] for i in keep]
        self.actions = [actions[i] for i in keep]
        self.axes = None if axes is None else [axes[i] for i in keep]
        self.n_windows = torch.tensor([len(z) - clip_len + 1 for z in self.latents], dtype=torch.float)
        if not 0.0 <= focus <= 1.0 or (focus > 0) != (weights is not None):
            raise ValueError(f"clip focus {focus} must lie in [0, 1] and comes with per-window weights")
        self.focus = focus
        if weights is not None:
            w = [weights[i] for i in keep]
            if [len(x) for x in w] != self.n_windows.long().tolist():
                raise ValueError("clip focus: one weight per window of each episode")
            self.focus_windows = torch.cat(w)  # (all windows,)
            self.first = torch.cat([torch.zeros(1, dtype=torch.long), self.n_windows.long().cumsum(0)])

    def _focused(self, gen: torch.Generator, n: int) -> list[tuple[int, int]]:
        """``n`` (episode, start) pairs drawn in proportion to the window weights."""
        flat = torch.multinomial(self.focus_windows, n, replacement=True, generator=gen)
        e = torch.searchsorted(self.first, flat, right=True) - 1
        return list(zip(e.tolist(), (flat - self.first[e]).tolist()))

    def __call__(self, gen: torch.Generator, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents (B, T, C, h, w), actions (B, T)); with axes also (B, T, A) as a third item."""
        T = self.clip_len
        eps = torch.multinomial(self.n_windows, batch_size, replacement=True, generator=gen).tolist()
        xs, acts, axs = [], [], []
        self.picks: list[tuple[int, int]] = []  # (episode, start) of each clip, for memory frames drawn with it
        focused = iter(self._focused(gen, batch_size)) if self.focus > 0 else None
        chosen = (torch.rand(batch_size, generator=gen) < self.focus).tolist() if focused is not None else [False] * batch_size
        for e, pick in zip(eps, chosen):
            s = int(torch.randint(int(self.n_windows[e]), (1,), generator=gen))
            if pick:
                e, s = next(focused)  # type: ignore[arg-type]
            self.picks.append((e, s))
            xs.append(clip(self.latents[e], s, T))
            acts.append(self.actions[e][s : s + T])
            if self.axes is not None:
                axs.append(self.axes[e][s : s + T])
        out = (torch.stack(xs).to(device), torch.stack(acts).to(device))
        return out if self.axes is None else (*out, torch.stack(axs).to(device))  # type: ignore[return-value]


class DynamicsTask:
    items_name = "frames"

    def __init__(self, dit: CausalDiT, latents: list[torch.Tensor], actions: list[torch.Tensor], recipe: DynamicsRecipe,
                 axes: list[torch.Tensor] | None = None, memory: MemorySampler | None = None,
                 focus: list[torch.Tensor] | None = None,
                 erased: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None,
                 ghosts: list[torch.Tensor] | None = None) -> None:
        if recipe.clip_len > dit.cfg.max_frames:
            raise ValueError(f"clip_len {recipe.clip_len} exceeds the model's max_frames {dit.cfg.max_frames}")
        if recipe.context not in ("clean", "df"):
            raise ValueError(f"context must be 'clean' or 'df', got {recipe.context!r}")
        if recipe.loss not in ("v", "x0"):
            raise ValueError(f"loss must be 'v' or 'x0', got {recipe.loss!r}")
        if recipe.object_weight < 0 or recipe.object_tau <= 0 or recipe.object_shift < 0:
            raise ValueError(f"object_weight must be >= 0, object_tau > 0 and object_shift >= 0, got "
                             f"{recipe.object_weight}, {recipe.object_tau}, {recipe.object_shift}")
        if recipe.flow_pin < 0 or recipe.flow_pin_ignore < 0 or (recipe.flow_pin and dit.cfg.pred != "warp"):
            raise ValueError(f"flow_pin and flow_pin_ignore must be >= 0, and flow_pin 0 unless the head is 'warp'; got "
                             f"{recipe.flow_pin}, {recipe.flow_pin_ignore} with pred {dit.cfg.pred!r}")
        self.model, self.recipe = dit, recipe
        dit.keep_flow = recipe.flow_pin > 0
        if (axes is not None) != bool(dit.cfg.n_axes):
            raise ValueError(f"the DiT has n_axes={dit.cfg.n_axes} but the data has {'no' if axes is None else axes[0].shape[-1]} axes")
        if not (0 <= recipe.ctx_blind < 1 and 0 <= recipe.ctx_blind_min <= 1) or (recipe.ctx_blind and recipe.context != "clean"):
            raise ValueError(f"ctx_blind must be in [0, 1) and ctx_blind_min in [0, 1], with the clean-context stream; got "
                             f"{recipe.ctx_blind}, {recipe.ctx_blind_min}, context={recipe.context!r}")
        if (memory is not None) != (recipe.memory != "none") or (memory is not None and recipe.context != "clean"):
            raise ValueError(f"recipe memory={recipe.memory!r} (context={recipe.context!r}) needs a memory sampler exactly "
                             "when memory is on, and the clean-context stream")
        if not 0 <= recipe.memory_erase < 1 or min(recipe.memory_erase_weight, recipe.memory_stale_weight) <= 0 \
                or not 0 < recipe.memory_erase_fade <= 1 \
                or (recipe.memory_erase and memory is None) \
                or (recipe.memory_erase > 0) != (erased is not None):
            raise ValueError(f"memory_erase must be in [0, 1), and above 0 only with memory and the erased latents, and "
                             f"memory_erase_fade in (0, 1]; got {recipe.memory_erase} (fade {recipe.memory_erase_fade}) with "
                             f"memory={recipe.memory!r}")
        if recipe.memory_ghost_weight <= 0 or (recipe.memory_ghost_weight != 1) != (ghosts is not None and memory is not None):
            raise ValueError(f"memory_ghost_weight must be > 0, and other than 1 only with memory and each episode's "
                             f"{recipe.memory_ghost_kind} cells; got {recipe.memory_ghost_weight} with memory={recipe.memory!r}")
        self.clips = ClipSampler(latents, actions, recipe.clip_len, axes, recipe.clip_focus, focus)
        self.memory, self.erased = memory, erased  # erased: per episode, latents (T, C, h, w) and cells (T, h, w)
        self.ghosts = ghosts  # per episode, (T, h, w) bool cells holding an object of memory_ghost_kind

    def stream(self, workers: int, rank: int, world: int, seed: int, batch_size: int, accum: int) -> None:
        """Draw clips through a DataLoader with ``workers`` processes and a DistributedSampler (training/stream.py)."""
        from .stream import ClipStream

        if self.recipe.clip_focus > 0:
            raise ValueError(f"recipe clip_focus {self.recipe.clip_focus} draws clips in the training process; "
                             f"it does not combine with --train-workers {workers}")
        self.clips = ClipStream(self.clips, batch_size, workers, rank, world, seed, accum)

    def start(self, step: int) -> None:
        self.clips.start(step)

    def batch(self, gen: torch.Generator, batch_size: int, device: torch.device) -> tuple[Any, ...]:
        """(latents, actions[, axes][, memory frames]) of a batch of clips."""
        out = self.clips(gen, batch_size, device)
        if self.memory is None:
            return out
        r = self.recipe
        # The clip's own keep list is kept out of the sampler's picks on the same (episode, start).
        picks = [(self.clips.keep[e], s) for e, s in self.clips.picks]
        mem, index = self.memory.draw(picks, r.clip_len, gen, device, r.ctx_noise_prob, r.ctx_noise_max)
        out = (*out, mem)
        if self.ghosts is not None:
            out = (*out, ghost_marks(self.ghosts, picks, index, r.clip_len))
        if self.erased is None:
            return out
        T = r.clip_len
        return (*out, ErasedClips(torch.stack([self.erased[0][e][s: s + T] for e, s in picks]),
                                  torch.stack([self.erased[1][e][s: s + T] for e, s in picks])))

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        x0, actions, *rest = batch
        memory = next((m for m in rest if isinstance(m, MemoryFrames)), None)
        erased = next((m for m in rest if isinstance(m, ErasedClips)), None)
        ghost = next((m for m in rest if isinstance(m, GhostMarks)), None)
        rest = [a for a in rest if torch.is_tensor(a)]  # the axes, if any
        r, dit = self.recipe, self.model
        B, T = actions.shape
        dev = x0.device
        mask = None  # (B, T, h, w) loss weights: cells nothing the model sees can tell, cells memory must (not) fill
        if memory is not None and (erased is not None or ghost is not None or r.memory_stale_weight != 1):
            base, cover = align(memory.z.to(dev), memory.offset, memory.valid, dit.cfg.patch)  # placed in the view
            must_not = []  # (cells (B, h, w), weight): what memory must not copy, weighed after the erasure's cells
            if ghost is not None:
                must_not.append((ghost_cells(ghost, memory.offset, memory.valid, dit.cfg.patch), r.memory_ghost_weight))
            if r.memory_stale_weight != 1:
                must_not.append((stale_cells(x0[:, -2], base, cover), r.memory_stale_weight))
            if erased is not None:
                x0, mask, share = erase_clips(x0, erased, cover, r.memory_erase, gen, r.memory_erase_weight, r.memory_erase_fade)
            for cells, weight in must_not:
                mask = weigh_last(mask, cells, weight, x0)
        t = sample_train_t((B, T), r.t_shift, generator=gen).to(dev)
        eps = torch.randn(x0.shape, generator=gen).to(dev)
        drop = torch.rand((B, T), generator=gen).to(dev) < r.action_dropout
        actions = actions.masked_fill(drop, dit.no_action)
        axes = rest[0].masked_fill(drop[..., None], 0.0) if rest else None  # dropped: no id and axes at the centre
        x_t = add_noise(x0, eps, t)
        if r.context == "clean":
            noisy = torch.rand((B, T), generator=gen) < r.ctx_noise_prob
            ctx_t = torch.rand((B, T), generator=gen) * r.ctx_noise_max * noisy
            if r.ctx_blind > 0:  # a blinded clip's window shows little: the scene must come from its memory frames
                blind = torch.rand((B, 1), generator=gen) < r.ctx_blind
                level = r.ctx_blind_min + (1 - r.ctx_blind_min) * torch.rand((B, 1), generator=gen)
                ctx_t = torch.where(blind, level.expand(B, T), ctx_t)
            ctx_t = ctx_t.to(dev)
            ctx = add_noise(x0, torch.randn(x0.shape, generator=gen).to(dev), ctx_t)
            v = model(x_t, t, actions, ctx=ctx, ctx_t=ctx_t, axes=axes, memory=memory)
        else:
            v = model(x_t, t, actions, axes=axes)
        if r.loss == "x0":
            pred, target = x0_from_v(x_t.float(), v.float(), t[..., None, None, None].float()), x0.float()
        else:
            pred, target = v.float(), velocity_target(x0, eps).float()
        err = F.mse_loss(pred, target, reduction="none").mean(dim=2)  # (B, T, h, w)
        per_frame = err.mean(dim=(2, 3))  # (B, T)
        pf = per_frame.detach()
        logs = {"loss_first": float(pf[:, 0].mean()), "loss_rest": float(pf[:, 1:].mean())}
        w = mask
        if r.object_weight > 0:
            ow = object_weights(x0, r.object_weight, r.object_tau, r.object_shift)  # (B, T, h, w)
            obj = ow > 1
            logs["loss_objects"] = float(err.detach()[obj].mean()) if obj.any() else 0.0
            logs["object_share"] = float(obj.float().mean())
            w = ow if w is None else ow * w
        if erased is not None and memory is not None:
            logs["erased_share"] = share
        loss = per_frame.mean() if w is None else (w * err).sum() / w.sum().clamp_min(1.0)
        if r.flow_pin > 0 and T > 1:
            pin = flow_pin_loss(dit.flow, x0, r.object_tau, r.object_shift, r.flow_pin_ignore)
            logs["loss_flow_pin"] = float(pin.detach())
            loss = loss + r.flow_pin * pin
        return loss, logs

    def items(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        return batch[1].numel()


@dataclass
class DynamicsResult:
    path: Path
    train_s: float
    last: dict[str, float]


def train_dynamics(data: str | Path, tokenizer: str | Path, out: str | Path, dyn_cfg: DynamicsConfig,
                   recipe: DynamicsRecipe, train_cfg: TrainConfig, *, sim_defaults: dict[str, Any] | None = None,
                   resume: bool = False, progress: bool = True, recipe_cmd: str = "",
                   run_dir: str | Path | None = None, extra_config: dict[str, Any] | None = None,
                   until: int | None = None, init: str | Path | None = None, context_episode: int = 0) -> DynamicsResult:
    """Train (or, with ``init``, fine-tune) a world model's DiT on ``data`` encoded by ``tokenizer``.

    ``init`` is a world-model checkpoint whose DiT weights start the run (its dynamics config must
    equal ``dyn_cfg``): fine-tuning a trained model on narrower or new data of the same world.
    The first frames of episode ``context_episode`` are stored as the checkpoint's play context.
    """
    ds = Dataset.open(data)
    vae, tok_config = load_tokenizer(tokenizer)
    vcfg = vae.cfg
    if (dyn_cfg.latent_channels, dyn_cfg.latent_size) != (vcfg.latent_channels, vcfg.latent_size):
        raise ValueError(f"dynamics expects latents {dyn_cfg.latent_channels}x{dyn_cfg.latent_size}, tokenizer "
                         f"{tokenizer} makes {vcfg.latent_channels}x{vcfg.latent_size}")
    if dyn_cfg.n_actions != ds.action_spec.n:
        raise ValueError(f"dynamics n_actions={dyn_cfg.n_actions} but {data} has {ds.action_spec.n} actions")
    if dyn_cfg.n_axes != ds.action_spec.n_axes:
        raise ValueError(f"dynamics n_axes={dyn_cfg.n_axes} but {data} has {ds.action_spec.n_axes} continuous axes")
    setup_cpu(train_cfg.threads)  # the encode pass honours --train-threads too
    t_enc = time.time()
    latents, actions, axes, source = dataset_latents(vae, ds, data)
    t_enc = time.time() - t_enc
    if progress:
        print(f"latents: {source} ({t_enc:.1f} s)", file=sys.stderr)
    torch.manual_seed(train_cfg.seed)
    dit = CausalDiT(dyn_cfg)
    init_info = init_from(dit, init, ds.action_spec, f"dataset {data}/meta.json") if init is not None else None
    init_speed = init_info.pop("speed", None) if init_info else None  # kept once, as this model's own default
    sim_defaults = dict(sim_defaults or {})
    memory, erased, ghosts = None, None, None
    if recipe.memory != "none":  # the checkpoint plays with the policy it was trained with
        sim_defaults.update(memory=recipe.memory, memory_slots=recipe.memory_frames)
        memory, erased, ghosts = memory_inputs(recipe, ds, data, vae, latents, actions, vcfg.frame_size, dyn_cfg,
                                               int(sim_defaults.get("window", recipe.clip_len)), progress)
    focus = None
    if recipe.clip_focus > 0:
        from .focus import dataset_focus

        kinds = tuple(k.strip() for k in recipe.clip_focus_kinds.split(",") if k.strip())
        focus = dataset_focus(ds, recipe.clip_len, kinds)
    task = DynamicsTask(dit, latents, actions, recipe, axes, memory, focus, erased, ghosts)
    trainer = Trainer(task, train_cfg, run_dir or Path(out) / "run", progress=progress)
    last = trainer.fit(resume, until)
    if trainer.rank == 0:
        from ..runtime.simulator import SimConfig

        sim = dict(to_dict(SimConfig()), **sim_defaults)
        config: dict[str, Any] = {
            "kind": "worldmodel", "vae": to_dict(vcfg), "dynamics": to_dict(dyn_cfg), "recipe": to_dict(recipe),
            "train": to_dict(train_cfg), "sim": sim, "action_spec": ds.action_spec.to_dict(),
            "env": ds.env, "env_kwargs": ds.meta.get("env_kwargs", {}), "fps": ds.meta.get("fps", 15),
            "data": {"path": str(data), "n_episodes": len(ds), "n_frames": ds.n_frames, "policy": ds.meta.get("policy")},
            "tokenizer": {"path": str(tokenizer), "metrics": tok_config.get("metrics", {}),
                          "train_seconds": tok_config.get("train_seconds")},
            "train_seconds": round(trainer.elapsed, 1), "encode_seconds": round(t_enc, 1), "latents": source,
            "recipe_cmd": recipe_cmd,
            "trained_steps": trainer.step,
            **({"init": init_info} if init_info else {}),
            **({"speed": init_speed} if init_speed else {}),
            **odometry_entry(ds),
            **(extra_config or {}),
        }
        n_params = sum(p.numel() for p in trainer.ema.parameters())
        card = (f"# World model\n\nCausal DiT ({n_params / 1e6:.2f} M parameters, {dyn_cfg.depth} blocks, width {dyn_cfg.dim}, "
                f"{dyn_cfg.n_tok} tokens/frame) over a {vcfg.latent_channels}x{vcfg.latent_size}x{vcfg.latent_size} VAE latent.\n\n"
                f"- data: `{data}` ({ds.n_frames} frames, env `{ds.env}`)\n"
                f"- dynamics: {trainer.step} of {train_cfg.steps} scheduled steps x {train_cfg.batch_size} clips of {recipe.clip_len} frames, "
                f"{trainer.elapsed / 60:.1f} min\n- weights: float16 on disk (half the file), float32 when loaded\n- recipe: `{recipe_cmd}`\n"
                + (f"- fine-tuned from `{init}` ({init_info['trained_steps']} steps)\n" if init_info else ""))
        # fp16 storage halves the file (loaded back as fp32); the bundled checkpoint must stay small.
        save_checkpoint(out, config, {"vae": vae, "dit": trainer.ema.cpu().float()}, card, dtype=torch.float16)
        # A fine-tune's own log sits beside the one of the run it started from, not over it.
        carry_train_logs(out, (resolve(tokenizer), None if init is None else resolve(init)),
                         ("dynamics" if init is None else "dynamics-finetune", trainer.log_path))
        from ..runtime.context import save_context

        save_context(out, ds, context_episode)  # play starts from a real frame even where the env cannot be built
    return DynamicsResult(Path(out), trainer.elapsed, last)
