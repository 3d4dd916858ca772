"""The memory interface: what a context policy decides each step, and how its choice reaches the cache.

A :class:`MemoryPolicy` sees every finished latent frame (``observe``) and, before each new frame,
names the past frames the new frame attends to besides the rolling window and where they sit
(``select``: a :class:`Selection`). :class:`MemoryKV` turns that choice into keys and values in the
cache's memory slots. The window itself is the cache's ring (``models/kv_cache.py``); the policies
only ever add frames in front of it.

Key choices:
- A bank entry is a latent (C, h, w), not keys and values: 8 KB per arena frame against ~100 KB of
  per-layer keys and values, and encodings are made only for entries actually retrieved. An entry's
  ``uid`` changes whenever its latent does, so an encoding is reused while the same place stays
  chosen (:class:`MemoryKV` keeps a bounded memo keyed by it).
- A policy chooses only frames that have left the window (age >= window): a frame still in the ring
  is attended already, and counting it twice would change what a window-only model was trained on.
- A model with a copy gate (``DynamicsConfig.mem_copy``) also gets the chosen latents themselves, moved
  into the view (``models.mem_copy.align``): through attention alone no model here copied what it was shown.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..models.dit import CausalDiT
from ..models.kv_cache import KVCache
from ..models.mem_copy import align
from .odometry import Odometry


@dataclass
class Entry:
    """One remembered frame."""

    uid: int
    """Unique per policy, new whenever the latent changes (the key of its encoding)."""
    z: torch.Tensor
    """(C, h, w) latent, as generated (or encoded from a true context frame)."""
    index: int
    """Absolute frame index it was observed at."""
    pose: tuple[float, float] | None = None
    """Camera position (x, y) in px when it was seen, for policies that track one."""


@dataclass
class Selection:
    """Memory frames for one step: per batch row, one entry (or None) per slot, and their placement."""

    entries: list[list[Entry | None]]
    time: torch.Tensor
    """(B, M) time positions on the rollout's frame axis."""
    offset: torch.Tensor
    """(B, M, 2) spatial placement (rows, cols) in tokens, relative to the frame being generated."""

    @property
    def valid(self) -> torch.Tensor:
        """(B, M) bool: slots that hold an entry."""
        return torch.tensor([[e is not None for e in row] for row in self.entries], dtype=torch.bool).reshape(self.time.shape)

    def latents(self, like: torch.Tensor) -> torch.Tensor:
        """The chosen latents (B, M, C, h, w) as fp32 on ``like``'s device (an empty slot: zeros shaped as ``like``)."""
        return torch.stack([torch.stack([e.z if e is not None else torch.zeros_like(like) for e in row])
                            for row in self.entries]).to(like.device, torch.float32)

    def frames(self) -> list[list[int]]:
        """Per batch row, the absolute indices of the chosen frames (what a test or a display checks)."""
        return [[e.index for e in row if e is not None] for row in self.entries]


@dataclass
class Geometry:
    """What a policy needs to know about the frames: sizes in px, latent cells and tokens, and the env's
    ``agent_half_px`` prior (:func:`worldloom.envs.registry.priors`; -1: no agent the camera follows) and,
    where the checkpoint has one, its odometry."""

    frame_size: int
    latent_size: int
    grid: int
    agent_half_px: int = -1
    odometry: Odometry | None = None
    """The agent's steps given its actions, fit on the training data (None: the checkpoint has none)."""

    @property
    def cell_px(self) -> float:
        return self.frame_size / self.latent_size

    @property
    def token_px(self) -> float:
        return self.frame_size / self.grid

    def view_overlap(self, d: torch.Tensor) -> torch.Tensor:
        """Share of a view that a view moved by ``d`` (..., 2) px still covers: (...) in [0, 1]."""
        V = float(self.frame_size)
        return (V - d.abs()).clamp_min(0).prod(-1) / (V * V)


class MemoryPolicy:
    """Decides, each step, which past frames beyond the window the new frame attends to, and where."""

    name: ClassVar[str] = ""
    slots: int = 0
    """Memory frames per step (cache slots in front of the window)."""

    def reset(self, batch: int, geometry: Geometry) -> None:
        """Forget everything: a new rollout of ``batch`` worlds starts."""
        self.batch, self.geometry, self._uid = batch, geometry, 0

    def observe(self, index: int, z: torch.Tensor, action: torch.Tensor | None = None) -> None:
        """Frame ``index`` is final: latents z (B, C, h, w), made from frame ``index - 1`` by ``action`` (B,)
        (None: not known, e.g. a context frame without actions)."""

    def select(self, index: int, window: int, action: torch.Tensor | None = None) -> Selection:
        """The memory frames that frame ``index`` attends to, given a rolling ``window`` and the ``action``
        (B,) that will make it (None: not known)."""
        return self.empty()

    def state(self) -> dict[str, Any]:
        """What play and bench show: the policy, its bank size and the last choice."""
        return {"memory": self.name, "bank_entries": self.bank_size(), "bank_bytes": self.nbytes()}

    def bank_size(self) -> int:
        return 0

    def nbytes(self) -> int:
        return 0

    # --- helpers for policies -------------------------------------------------------------------
    def _entry(self, z: torch.Tensor, index: int, pose: tuple[float, float] | None = None) -> Entry:
        self._uid += 1
        return Entry(self._uid, z.detach().clone(), index, pose)

    def empty(self) -> Selection:
        B, M = self.batch, self.slots
        return Selection([[None] * M for _ in range(B)], torch.zeros((B, M), dtype=torch.float64), torch.zeros((B, M, 2), dtype=torch.float64))


class MemoryKV:
    """Encodes the chosen entries (memoised by uid) and writes them, placed, into a cache's memory slots."""

    def __init__(self, dit: CausalDiT, cap: int = 512) -> None:
        self.dit, self.cap = dit, cap
        self.memo: OrderedDict[int, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()  # uid -> (L, H, N, hd) k, v
        self.encoded = 0  # entries encoded so far (what retrieval costs)

    def load(self, cache: KVCache, sel: Selection) -> None:
        if cache.mem == 0:
            return
        todo = {e.uid: e for row in sel.entries for e in row if e is not None and e.uid not in self.memo}
        if todo:
            z = torch.stack([e.z for e in todo.values()])[:, None].to(cache.k.device, next(self.dit.parameters()).dtype)  # (K, 1, C, h, w)
            k, v = self.dit.encode_memory(z, torch.zeros(z.shape[:2], device=z.device))  # (L, K, H, N, hd)
            for i, uid in enumerate(todo):  # copies: a view would keep the whole stacked batch alive
                self.memo[uid] = (k[:, i].clone(), v[:, i].clone())
            self.encoded += len(todo)
        L, B, H, _, hd = cache.k.shape
        N, M = cache.n_tok, cache.mem
        k = cache.k.new_zeros((L, B, H, M * N, hd))
        v = torch.zeros_like(k)
        for b, row in enumerate(sel.entries):
            for j, e in enumerate(row):
                if e is not None:
                    ek, ev = self.memo[e.uid]
                    self.memo.move_to_end(e.uid)
                    k[:, b, :, j * N : (j + 1) * N], v[:, b, :, j * N : (j + 1) * N] = ek, ev
        while len(self.memo) > self.cap:
            self.memo.popitem(last=False)
        base = None
        if self.dit.mem_copy is not None:  # the chosen frames themselves, moved into the current view
            c, s = self.dit.cfg.latent_channels, self.dit.cfg.latent_size
            base = align(sel.latents(cache.k.new_zeros((c, s, s))), sel.offset, sel.valid, self.dit.cfg.patch)
        cache.set_memory(self.dit.place_memory(k, sel.time, sel.offset), v, sel.valid.to(cache.k.device), base)

    def reset(self) -> None:
        self.memo.clear()

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.memo.values())
