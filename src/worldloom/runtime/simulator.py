"""The streaming Simulator: ``reset(context)`` then ``step(action) -> frame``, one loop for all uses.

Per step: draw noise for the new latent frame, run ``steps`` Euler steps of the DiT against the KV
cache (each pass attends to the cached past), then one *commit* pass that writes the finished frame's
keys/values (optionally lightly re-noised, matching context-noise training) into the cache, and
decode it with the VAE (and, if the checkpoint has one, the temporal decoder, which draws each frame
with the last shown frame in view: models/temporal_decoder.py). With ``fuse`` (default) the commit pass is not run on its own: the finished
frame is committed in the same forward pass as the next frame's first denoising step (one pass over
two frames costs far less than two passes over one at this size), so each step is ``steps`` passes.
The cache is a rolling window plus the memory frames a context policy (``worldloom.memory``:
window, sink, place, place_first, place_early, similar, similar_aligned, successor) chose for this step, so memory and time per frame stay flat for
unbounded rollouts. Batched: B independent worlds step together.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..actions import ActionSpec
from ..config import doc
from ..diffusion.samplers import EulerSampler
from ..diffusion.schedules import add_noise
from ..memory import MEMORIES, Geometry, MemoryKV, MemoryPolicy, PlaceMemory, Selection, make_memory
from ..memory.odometry import Odometry
from ..models.dit import CausalDiT
from ..models.temporal_decoder import TemporalDecoder, as_shown
from ..models.vae import VAE


@dataclass
class SimConfig:
    steps: int = doc(4, "sampler (denoising) steps per frame")
    shift: float = doc(1.0, "sampler time-grid shift (>1 spends more steps at high noise)")
    window: int = doc(11, "rolling window: cached past frames + the current one")
    sink: int = doc(0, "attention-sink frames kept forever (the first frames of the rollout): the 'sink' memory")
    memory: str = doc("window", choices=tuple(MEMORIES), text="context policy beyond the window: window (none) | sink | place "
                      "(retrieval by the camera pose the model's own frames integrate; place_first keeps each place's first view, place_early also recalls the earliest view first) | similar (retrieval by latent similarity) | similar_aligned (the same, each frame placed where its content lines up with the newest frame's) | successor (the frame that followed the most similar past frame "
                      "under the action now taken)")
    memory_slots: int = doc(2, "memory frames attended per step (place, similar, similar_aligned, successor; sink: its frames)")
    memory_bank: int = doc(256, "most frames a memory bank keeps (place: one per visited place cell)")
    memory_pose: str = doc("auto", choices=("auto", "frames", "actions"), text="where place memories read the camera pose: "
                           "'actions' (the checkpoint's odometry, the frames choosing the snap phase), 'frames' (the shifts "
                           "the generated frames show), 'auto' (actions where the checkpoint has an odometry)")
    context_noise: float = doc(0.0, "noise level at which finished frames enter the cache")
    t_max: float = doc(1.0, "noise level sampling starts from (1 = pure noise)")
    init: str = doc("noise", choices=("noise", "prev"), text="start point below t_max=1: 'noise' (pure noise) or 'prev' (previous frame noised to t_max)")
    seed: int = doc(0, "seed of the sampling noise")
    fuse: bool = doc(True, "commit each frame in the next frame's first pass (same numbers, fewer passes)")
    reencode: bool = doc(False, "each generated frame enters the context as the tokenizer's encoding of its decoded "
                         "uint8 frame, as a true frame would, instead of as the latent the DiT produced")

    def resolved_memory(self) -> tuple[str, int]:
        """The policy these settings name and its slots: the legacy ``sink`` field is the 'sink' memory."""
        return ("sink", self.sink) if self.sink else (self.memory, 0 if self.memory == "window" else self.memory_slots)

    def context_policy(self, brief: bool = False) -> str:
        """The context policy in words (what the persistence suite reports; ``brief``: what play shows)."""
        name, slots = self.resolved_memory()
        if brief:
            return f"window {self.window}" + ("" if name == "window" else f" + sink {slots}" if name == "sink"
                                              else f" + {name} memory x{slots}")
        base = f"rolling window of {self.window} frames (the current one + {self.window - 1} past)"
        if name == "sink":
            return base + f", {slots} sink frame(s): the first context frames stay attended"
        if name == "window":
            return base + ", no memory beyond it"
        return base + f", '{name}' memory: {slots} frame(s) a step from a bank of {self.memory_bank}"

    def problems(self, max_frames: int) -> list[tuple[tuple[str, ...], str]]:
        """What makes these settings unusable with a DiT of ``max_frames``: (the fields at fault, why)."""
        out: list[tuple[tuple[str, ...], str]] = []
        if self.steps < 1:
            out.append((("steps",), "must be >= 1"))
        if self.window < 1 or self.sink < 0:
            out.append((("window", "sink"), "need window >= 1 and sink >= 0"))
        elif self.sink + self.window > max_frames:
            out.append((("window", "sink"), f"window + sink exceeds the checkpoint's max_frames {max_frames}"))
        if self.memory not in MEMORIES:
            out.append((("memory",), f"unknown; known: {', '.join(MEMORIES)}"))
        elif self.sink and self.memory not in ("window", "sink"):
            out.append((("memory", "sink"), "sink frames are the 'sink' memory; choose one policy"))
        elif self.memory_slots < 1 or self.memory_bank < self.memory_slots:
            out.append((("memory_slots", "memory_bank"), "need memory_slots >= 1 and memory_bank >= memory_slots"))
        if not (math.isfinite(self.shift) and self.shift > 0):
            out.append((("shift",), "must be a finite number > 0"))
        if not (math.isfinite(self.t_max) and 0 < self.t_max <= 1) or not (math.isfinite(self.context_noise) and 0 <= self.context_noise < 1):
            out.append((("t_max", "context_noise"), "need 0 < t_max <= 1 and 0 <= context_noise < 1"))
        if self.init not in ("noise", "prev"):
            out.append((("init",), "must be 'noise' or 'prev'"))
        if self.memory_pose not in PlaceMemory.POSES:
            out.append((("memory_pose",), f"unknown; known: {', '.join(PlaceMemory.POSES)}"))
        return out


@dataclass
class WorldModel:
    """A loaded checkpoint: tokenizer + dynamics (+ optional temporal decoder) + what they were trained on."""

    vae: VAE
    dit: CausalDiT
    config: dict[str, Any]
    action_spec: ActionSpec
    path: Path | None = None
    sim: SimConfig = field(default_factory=SimConfig)
    tdec: TemporalDecoder | None = None
    base: WorldModel | None = None
    """The full-precision model a sped-up one was made from (:func:`~worldloom.runtime.speed.accelerate`);
    what :meth:`save_pretrained` writes."""

    def save_pretrained(self, out: str | Path, dtype: str = "float32") -> Path:
        """Write this model as a checkpoint directory that :func:`worldloom.load` reads back bit for bit
        (see :func:`worldloom.runtime.loading.save_pretrained`)."""
        from .loading import save_pretrained

        return save_pretrained(self, out, dtype)

    @property
    def frame_size(self) -> int:
        return self.vae.cfg.frame_size

    @cached_property
    def odometry(self) -> Odometry | None:
        """The agent's steps given its actions, fit on the training data (config.json: odometry), if recorded."""
        d = self.config.get("odometry")
        return None if d is None else Odometry.from_dict(d, where=f"{self.path or 'model'}/config.json: odometry")


class Simulator:
    def __init__(self, model: WorldModel, cfg: SimConfig | None = None, batch: int = 1, **overrides: Any) -> None:
        self.model = model
        self.cfg = replace(cfg or model.sim, **overrides)
        for fields, why in self.cfg.problems(model.dit.cfg.max_frames)[:1]:
            raise ValueError("SimConfig " + ", ".join(f"{f}={getattr(self.cfg, f)!r}" for f in fields) + f": {why}")
        self.batch = batch
        self.device = next(model.dit.parameters()).device
        self.sampler = EulerSampler(self.cfg.steps, self.cfg.shift, self.cfg.t_max)
        self.fused = self.cfg.fuse
        self.memory = self.policy(self.cfg)
        self.memkv = MemoryKV(model.dit, cap=4 * max(1, self.memory.slots) * batch)
        self.cache = model.dit.new_cache(batch, self.cfg.window, self.memory.slots, spare=int(self.fused))
        self.selection: Selection | None = None  # the last step's memory choice
        from ..envs.registry import agent_half_px

        self.geometry = Geometry(model.frame_size, model.dit.cfg.latent_size, model.dit.cfg.grid,
                                 agent_half_px(model.config.get("env")), model.odometry)
        self.memory.reset(batch, self.geometry)
        self.gen = torch.Generator(device="cpu")
        self.t = 0
        self.timings: dict[str, float] = {}
        self.latent: torch.Tensor | None = None  # newest latent frame (B, C, h, w)
        self.prev: torch.Tensor | None = None  # newest frames as committed (context-noised), stacked for the DiT (B, K*C, h, w)
        self.pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None  # (latent, action, axes) generated, not yet committed
        self.record_step: int | None = None  # sampler step whose input step_latent keeps in ``recorded``
        self.recorded: torch.Tensor | None = None
        # Temporal decoder state: the frame last shown and the base decode of its latent, (B, 3, H, W) in [-1, 1].
        self.shown: torch.Tensor | None = None
        self.base_prev: torch.Tensor | None = None

    @staticmethod
    def policy(cfg: SimConfig) -> MemoryPolicy:
        """The context policy ``cfg`` names (the legacy ``sink`` field is the 'sink' memory)."""
        name, slots = cfg.resolved_memory()
        return make_memory(name, slots, cfg.memory_bank, cfg.memory_pose)

    # --- helpers --------------------------------------------------------------------------------
    def _actions(self, action: int | np.ndarray | torch.Tensor | list[int]) -> torch.Tensor:
        a = (action if torch.is_tensor(action) else torch.as_tensor(np.array(action))).long().reshape(-1)
        if a.numel() == 1 and self.batch > 1:
            a = a.expand(self.batch)
        if a.numel() != self.batch:
            raise ValueError(f"expected {self.batch} actions, got {a.numel()}")
        n = self.model.action_spec.n
        if bool(((a < 0) | (a > n)).any()):  # n itself is the model's "no action" id
            raise ValueError(f"action {a.tolist()} out of range: valid ids are 0..{n - 1} ({list(self.model.action_spec.names)})")
        return a.to(self.device)

    def _axes(self, axes: np.ndarray | torch.Tensor | list[float] | None, where: str = "axes") -> torch.Tensor | None:
        """Raw axis values (n_axes,) or (B, n_axes), None = every axis at rest -> normalised (B, n_axes), or
        None for a model without axes."""
        spec = self.model.action_spec
        if not spec.n_axes:
            if axes is not None and np.asarray(axes).size:
                raise ValueError(f"{where}: this model has no continuous axes, got {np.asarray(axes).tolist()}")
            return None
        v = spec.rest_axes() if axes is None else np.asarray(axes.cpu() if torch.is_tensor(axes) else axes, np.float32)
        if v.ndim == 1:
            v = np.broadcast_to(v, (self.batch, v.shape[-1]))
        if v.shape != (self.batch, spec.n_axes):
            raise ValueError(f"{where}: expected {spec.n_axes} values {[a.name for a in spec.axes]} "
                             f"(or ({self.batch}, {spec.n_axes})), got shape {v.shape}")
        return torch.from_numpy(spec.normalize(spec.check_axes(v, where))).to(self.device)

    def _randn(self, shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen).to(self.device)

    def _context_noised(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The finished latent z (B, C, h, w) as it enters the cache, and its noise level (B,)."""
        tc = self.cfg.context_noise
        t = torch.full((self.batch,), tc, device=self.device)
        return (add_noise(z[:, None], self._randn(z[:, None].shape), t[:, None])[:, 0] if tc > 0 else z), t

    def _commit(self, z: torch.Tensor, a: torch.Tensor, ax: torch.Tensor | None = None) -> None:
        """Write the finished latent z (B, C, h, w) into the cache as the newest past frame."""
        zc, t = self._context_noised(z)
        self.model.dit.step(zc, t, a, self.cache, commit=True, prev=self.prev, axes=ax)
        self.prev = self.model.dit.push(self.prev, zc)  # what the next frame sees as its past (as in training: the context stream)

    # --- public loop ----------------------------------------------------------------------------
    @torch.inference_mode()
    def reset(self, context_frames: np.ndarray | torch.Tensor, context_actions: np.ndarray | torch.Tensor | list[int] | None = None,
              context_axes: np.ndarray | None = None) -> None:
        """Start a rollout from context frames (T, H, W, 3) or (B, T, H, W, 3) uint8, their actions and
        (models with axes) their raw axis values ((T, n_axes) or (B, T, n_axes); None = at rest)."""
        frames = torch.as_tensor(np.array(context_frames))
        if frames.ndim == 4:
            frames = frames[None].expand(self.batch, *frames.shape)
        if frames.ndim != 5 or frames.shape[0] != self.batch or frames.dtype != torch.uint8:
            raise ValueError(f"context frames must be uint8 (T, H, W, 3) or ({self.batch}, T, H, W, 3), got "
                             f"{tuple(frames.shape)} {frames.dtype}")
        z = self.model.vae.encode(frames.to(self.device)).float()  # (B, T, C, h, w); sampler math stays fp32
        self.reset_latents(z, context_actions, context_axes)
        if self.model.tdec is not None:  # the true last context frame is what is on screen
            self.shown = VAE.to_float(frames[:, -1].to(self.device))

    @torch.inference_mode()
    def reset_latents(self, z: torch.Tensor, context_actions: np.ndarray | torch.Tensor | list[int] | None = None,
                      context_axes: np.ndarray | None = None) -> None:
        """Start a rollout from context latents (B, T, C, h, w), their actions ((T,) or (B, T)) and axes (see :meth:`reset`)."""
        if z.ndim != 5 or z.shape[0] != self.batch:
            raise ValueError(f"context latents must be ({self.batch}, T, C, h, w), got {tuple(z.shape)}")
        T = z.shape[1]
        acts = torch.zeros((self.batch, T), dtype=torch.long) if context_actions is None else torch.as_tensor(np.asarray(context_actions)).long()
        if acts.ndim == 1:
            acts = acts[None].expand(self.batch, T)
        if acts.shape != (self.batch, T):
            raise ValueError(f"context actions must be ({T},) or ({self.batch}, {T}), got {tuple(acts.shape)}")
        self.cache.reset()
        self.gen.manual_seed(self.cfg.seed)
        self.latent = self.prev = self.pending = self.selection = None
        self.memory.reset(self.batch, self.geometry)
        self.memkv.reset()
        z = z.to(self.device).float()
        cax = None if context_axes is None else np.asarray(context_axes, np.float32)
        if cax is not None and cax.ndim == 2:
            cax = np.broadcast_to(cax, (self.batch, *cax.shape))
        if cax is not None and cax.shape[:2] != (self.batch, T):
            raise ValueError(f"context axes must be ({T}, n_axes) or ({self.batch}, {T}, n_axes), got {tuple(cax.shape)}")
        for i in range(T):
            a = self._actions(acts[:, i])
            self._commit(z[:, i], a, self._axes(None if cax is None else cax[:, i], "context axes"))
            self.memory.observe(i, z[:, i], None if context_actions is None or i == 0 else a)
        self.t = T
        self.latent = z[:, -1]
        if self.model.tdec is not None:
            self.base_prev = self.model.vae.decode_float(self.latent)
            self.shown = as_shown(self.base_prev)

    @torch.inference_mode()
    def step_latent(self, action: int | np.ndarray | torch.Tensor | list[int], axes: np.ndarray | list[float] | None = None) -> torch.Tensor:
        """Generate the next latent frame (B, C, h, w) under ``action`` and raw ``axes`` values (models with
        axes; None = at rest), committed now, or in the next step's first pass when fused."""
        if self.t == 0:
            raise RuntimeError("call reset(context_frames, context_actions) before step()")
        a, ax = self._actions(action), self._axes(axes)
        dit, s = self.model.dit, self.sampler
        t0 = time.perf_counter()
        if self.memory.slots:  # this step's memory frames, fixed for all its passes
            self.selection = self.memory.select(self.t, self.cfg.window, a)
            self.memkv.load(self.cache, self.selection)
        # The pending frame's context noise is drawn first: the same random stream as unfused stepping.
        pend = None if self.pending is None else (self._context_noised(self.pending[0]), *self.pending[1:])
        x = self._randn(torch.Size((self.batch, dit.cfg.latent_channels, dit.cfg.latent_size, dit.cfg.latent_size)))
        if self.cfg.init == "prev" and self.latent is not None:  # (B, C, h, w): the newest frame, noised to t_max
            x = (1 - s.t_max) * self.latent + s.t_max * x
        for i in range(s.steps):
            t = s.timesteps[i].expand(self.batch).to(self.device)
            if i == self.record_step:  # the input of this sampler step, for self-rollout training
                self.recorded = x
            if i == 0 and pend is not None:  # commit the last frame inside this frame's first pass
                (zc, tz), za, zax = pend
                v = dit.step_fused(zc, tz, za, self.prev, x, t, a, self.cache, axes_z=zax, axes=ax)
                self.prev, self.pending = dit.push(self.prev, zc), None
            else:
                v = dit.step(x, t, a, self.cache, prev=self.prev, axes=ax)
            x = s.step(v, i, x)
        if self.cfg.reencode:  # (B, C, h, w): back through pixels, onto the latents the DiT was trained on
            x = self.model.vae.encode(self.model.vae.decode(x)).float()
        t1 = time.perf_counter()
        if self.fused:
            self.pending = (x, a, ax)
        else:
            self._commit(x, a, ax)
        t2 = time.perf_counter()
        self.latent = x
        self.memory.observe(self.t, x, a)
        self.t += 1
        self.timings = {"denoise_ms": (t1 - t0) * 1e3, "cache_write_ms": (t2 - t1) * 1e3}
        return x

    @torch.inference_mode()
    def render(self, z: torch.Tensor) -> np.ndarray:
        """Decode the newest latent frame z (B, C, h, w) to uint8 (B, H, W, 3); call once per generated frame, in order."""
        t0 = time.perf_counter()
        base = self.model.vae.decode_float(z)  # (B, 3, H, W)
        if self.model.tdec is None:
            frame = VAE.to_uint8(base)  # (B, H, W, 3)
        else:
            if self.shown is None or self.base_prev is None:
                raise RuntimeError("call reset(context_frames, context_actions) before render()")
            frame = VAE.to_uint8(self.model.tdec(base, self.base_prev, self.shown))
            self.shown, self.base_prev = VAE.to_float(frame), base  # what is on screen, as the next step sees it
        frame = frame.cpu().numpy()
        self.timings["decode_ms"] = (time.perf_counter() - t0) * 1e3
        return frame

    @torch.inference_mode()
    def step(self, action: int | np.ndarray | torch.Tensor | list[int], axes: np.ndarray | list[float] | None = None) -> np.ndarray:
        """Generate, commit and decode the next frame: uint8 (H, W, 3), or (B, H, W, 3) if batched."""
        frame = self.render(self.step_latent(action, axes))
        return frame[0] if self.batch == 1 else frame

    def rollout(self, actions: np.ndarray | list[int], axes: np.ndarray | None = None) -> np.ndarray:
        """Step through ``actions`` (N,) or (B, N) and raw ``axes`` ((N, n_axes) or (B, N, n_axes)); returns
        frames (N, H, W, 3) or (B, N, H, W, 3)."""
        acts = np.asarray(actions)
        if acts.ndim == 1:
            acts = np.broadcast_to(acts, (self.batch, len(acts)))
        ax = None if axes is None else np.asarray(axes, np.float32)
        if ax is not None and ax.ndim == 2:
            ax = np.broadcast_to(ax, (self.batch, *ax.shape))
        frames = [self.step(acts[:, i], None if ax is None else ax[:, i]) for i in range(acts.shape[1])]
        return np.stack(frames, axis=0 if self.batch == 1 else 1)

    def state(self) -> dict[str, Any]:
        mem = int(self.cache.mem_valid[0].sum()) if self.cache.mem else 0
        return {"step": self.t, "cached_frames": min(self.cache.n_frames, self.cfg.window) + mem,
                "window": self.cfg.window, "sink": self.cfg.sink, "sampler_steps": self.cfg.steps,
                "cache_bytes": self.cache.nbytes(), "timings_ms": dict(self.timings),
                **self.memory.state(), "memory_bytes": self.memory.nbytes() + self.memkv.nbytes(),
                "memory_frames": [] if self.selection is None else self.selection.frames()}
