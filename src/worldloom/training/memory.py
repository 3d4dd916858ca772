"""Memory frames for training clips, drawn as the run-time policies draw them (``worldloom.memory``).

For a clip of ``T`` frames starting at ``s``, the last target is frame ``s + T - 1`` and the newest
frame a run-time policy would query with is ``s + T - 2``. Candidates are the frames that have left a
``window``-frame window by then (index <= s + T - 1 - window): with window = clip length, frames
before the clip. Each clip gets ``frames`` memory frames:

- ``place``: the candidates whose camera view overlaps the query frame's view most (the true camera
  from the dataset's ``state.camera``, which training may use; at run time the policy integrates the
  pose from its own frames), placed at their offset from it in tokens;
- ``similar``: the candidates whose 4x4-pooled latents are most like the query frame's, unshifted;
- ``similar_aligned``: the same, each placed where its content lines up with the query frame's
  (``memory.policies.register``, as the run-time policy places it);
- ``successor``: the frames that followed the candidates most like the query frame under the action
  that makes the last target (the dataset's actions), unshifted.

Each slot takes one of the ``pool`` best candidates at random (so the model sees more than one view
of a place), and is left empty with probability ``drop`` (so the model also works with no memory,
as at the start of every rollout). With ``jitter``, a place memory frame is sometimes placed 1-2 latent
cells off on each axis, as the run-time pose (integrated from the model's own frames) can be: a copy
gate (models.mem_copy) trained on exact placements copies a misplaced frame as readily. Memory frames
get context-noise augmentation like the context stream, and sit ``window`` frames before the last
target in time, as at run time.

:func:`stale_cells` marks where a placed memory frame no longer shows the place (``DynamicsRecipe.
memory_stale_weight``). Weighed 5x beside the landmark erasure (training/erase.py), it cut the balls copied back
on return little (false objects 6-13 % of revisit frames against 12-15 %) and the landmarks brought back by a
quarter, so no recipe uses it (docs/BENCHMARKS.md, "Memory", twenty-fourth session).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..diffusion.schedules import add_noise
from ..memory.base import Geometry
from ..memory.policies import descriptor, register
from ..models.dit_memory import MemoryFrames

if TYPE_CHECKING:
    from ..data.format import Dataset
    from ..models.dit import DynamicsConfig
    from ..models.vae import VAE
    from .dynamics import DynamicsRecipe

KINDS = ("place", "similar", "similar_aligned", "successor")


class MemorySampler:
    """Draws each training clip's memory frames from the frames before it in its episode."""

    def __init__(self, kind: str, latents: list[torch.Tensor], geometry: Geometry, *, frames: int = 2, window: int = 8,
                 poses: list[torch.Tensor] | None = None, actions: list[torch.Tensor] | None = None, pool: int = 4,
                 drop: float = 0.25, min_overlap: float = 0.25, jitter: float = 0.0) -> None:
        if kind not in KINDS:
            raise ValueError(f"training memory must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind == "place" and poses is None:
            raise ValueError("place memory needs each frame's camera pose (the dataset's state.camera)")
        if kind == "successor" and actions is None:
            raise ValueError("successor memory needs each episode's actions")
        if frames < 1 or window < 1 or pool < 1 or not 0 <= drop < 1:
            raise ValueError(f"memory sampler: need frames, window, pool >= 1 and 0 <= drop < 1, got {frames}, {window}, {pool}, {drop}")
        if not 0 <= jitter <= 1 or (jitter and kind != "place"):
            raise ValueError(f"memory sampler: jitter must be in [0, 1], and 0 unless the memory is 'place' (it moves "
                             f"a placement); got {jitter} with {kind!r}")
        self.kind, self.latents, self.geometry = kind, latents, geometry
        self.frames, self.window, self.pool, self.drop, self.min_overlap = frames, window, pool, drop, min_overlap
        self.jitter = jitter
        self.poses = None if poses is None else [p.double() for p in poses]  # (T, 2) camera x, y px per episode
        self.desc = [descriptor(z) for z in latents] if kind != "place" else None  # (T, D) per episode
        self.actions = actions  # (T,) per episode: actions[t] made frame t

    def _scores(self, e: int, query: int, n: int) -> torch.Tensor:
        """Scores (n,) of frames 0..n-1 of episode ``e`` against frame ``query`` (higher = better; < 0: never)."""
        if self.kind == "place":
            ov = self.geometry.view_overlap(self.poses[e][:n] - self.poses[e][query])  # (n,)
            return torch.where(ov >= self.min_overlap, ov, torch.full_like(ov, -1.0))
        if self.kind == "successor":  # candidate c stands for its successor c + 1, made by the last target's action
            sc = torch.full((n,), -1.0)
            if n > 1:
                acts = self.actions[e]
                key = self.desc[e][: n - 1] @ self.desc[e][query]  # (n - 1,)
                same = acts[1:n] == acts[query + 1]
                sc[: n - 1] = torch.where(same & (key >= 0), key, torch.full_like(key, -1.0))
            return sc
        return self.desc[e][:n] @ self.desc[e][query]

    def __call__(self, picks: list[tuple[int, int]], clip_len: int, gen: torch.Generator, device: torch.device,
                 noise_prob: float = 0.0, noise_max: float = 0.0) -> MemoryFrames:
        """Memory for clips ``picks`` = [(episode, start)] of ``clip_len`` frames: MemoryFrames with B = len(picks)."""
        return self.draw(picks, clip_len, gen, device, noise_prob, noise_max)[0]

    def draw(self, picks: list[tuple[int, int]], clip_len: int, gen: torch.Generator, device: torch.device,
             noise_prob: float = 0.0, noise_max: float = 0.0) -> tuple[MemoryFrames, torch.Tensor]:
        """As calling it, and also which frame of its episode each slot holds: (B, M) long, -1 where empty."""
        B, M = len(picks), self.frames
        C, h, w = self.latents[0].shape[1:]
        z = torch.zeros((B, M, C, h, w))
        index = torch.full((B, M), -1, dtype=torch.long)
        offset = torch.zeros((B, M, 2), dtype=torch.float64)
        valid = torch.zeros((B, M), dtype=torch.bool)
        tok = self.geometry.token_px
        for b, (e, s) in enumerate(picks):
            # candidates: frames 0 .. n-1, never inside the clip (a target must not see itself or its future)
            query, n = s + clip_len - 2, min(s + clip_len - self.window, s)
            if n <= 0 or query < 0:
                continue
            sc = self._scores(e, query, n)
            order = torch.argsort(sc, descending=True)[: self.pool]
            order = order[sc[order] >= 0] if self.kind not in ("similar", "similar_aligned") else order
            for j in range(M):
                if len(order) == 0 or float(torch.rand((), generator=gen)) < self.drop:
                    continue
                c = int(order[int(torch.randint(len(order), (1,), generator=gen))])
                c += self.kind == "successor"  # the frame that followed the candidate
                z[b, j], valid[b, j], index[b, j] = self.latents[e][c], True, c
                if self.poses is not None:
                    dx, dy = (self.poses[e][c] - self.poses[e][query]).tolist()
                    offset[b, j] = torch.tensor([dy / tok, dx / tok], dtype=torch.float64)
                    if self.jitter and float(torch.rand((), generator=gen)) < self.jitter:  # a drifted pose: 1-2 cells off
                        cells = torch.randint(1, 3, (2,), generator=gen) * (torch.randint(0, 2, (2,), generator=gen) * 2 - 1)
                        offset[b, j] += cells.double() * self.geometry.cell_px / tok
                elif self.kind == "similar_aligned":
                    cells = register(self.latents[e][c][None].float(), self.latents[e][query].float())[0]  # (rows, cols)
                    offset[b, j] = cells * self.geometry.cell_px / tok
        noisy = torch.rand((B, M), generator=gen) < noise_prob
        t = torch.rand((B, M), generator=gen) * noise_max * noisy
        z = add_noise(z, torch.randn(z.shape, generator=gen), t)
        time = torch.full((B, M), float(clip_len - 1 - self.window), dtype=torch.float64)
        return MemoryFrames(z.to(device), t.to(device), time, offset, valid.to(device)), index


STALE_TAU = 1.0  # mean square over channels of standardised latents: a cell the memory frame no longer shows


def stale_cells(prev: torch.Tensor, base: torch.Tensor, cover: torch.Tensor, tau: float = STALE_TAU) -> torch.Tensor:
    """Where the placed memory frames disagree with the true frame before the last target: ``prev`` (B, C, h, w)
    clean latents, the memory ``base`` (B, C, h, w) and ``cover`` (B, 1, h, w) placed in its view
    (``models.mem_copy.align``) -> (B, h, w) bool, covered cells whose memory latent is more than ``tau`` away
    (mean square over channels), grown by one cell since the head's flow moves the base by up to one.

    They are what a copy gate must not copy: an object that moved since the memory frame was seen (a ghost where
    it was, a hole where it is now), or a frame placed off by a drifted pose."""
    off = (((base - prev.float()) ** 2).mean(1, keepdim=True) > tau) & (cover > 0)  # (B, 1, h, w)
    return torch.nn.functional.max_pool2d(off.float(), 3, 1, 1)[:, 0] > 0


def dataset_poses(ds: Dataset, where: str | Path) -> list[torch.Tensor]:
    """Each episode's camera position (T, 2) px from its ``state.camera`` (what place memory trains with)."""
    out = []
    for i, ep in enumerate(ds):
        cam = ep.state.get("camera")
        if cam is None or np.asarray(cam).shape != (len(ep.frames), 2):
            raise ValueError(f"{where}: episode {i} has no state.camera of shape ({len(ep.frames)}, 2) (got "
                             f"{None if cam is None else np.asarray(cam).shape}); place memory trains on a world that "
                             "reports its camera; use --recipe-memory similar for any other")
        out.append(torch.from_numpy(np.asarray(cam, np.float64)))
    return out


def memory_inputs(recipe: DynamicsRecipe, ds: Dataset, data: str | Path, vae: VAE, latents: list[Any],
                  actions: list[torch.Tensor], frame_size: int, dyn_cfg: DynamicsConfig, window: int,
                  progress: bool = False) -> tuple[MemorySampler, tuple[list[torch.Tensor], list[torch.Tensor]] | None,
                                                   list[torch.Tensor] | None]:
    """What a run with memory trains on beside its clips: the memory sampler, the erased latents and cells
    (``memory_erase``, training/erase.py; None when off) and each episode's (T, h, w) cells holding an object
    of ``memory_ghost_kind`` (``memory_ghost_weight``, training/ghosts.py; None when off)."""
    from ..envs.registry import agent_half_px
    from ..memory.base import Geometry
    from .erase import erased_latents
    from .ghosts import object_cells
    from .latents import clip

    geometry = Geometry(frame_size, dyn_cfg.latent_size, dyn_cfg.grid, agent_half_px(ds.env))
    memory = MemorySampler(recipe.memory, [clip(z, 0, len(z)) for z in latents], geometry,  # in memory: drawn anywhere
                           frames=recipe.memory_frames, window=window,
                           poses=dataset_poses(ds, data) if recipe.memory == "place" else None,
                           actions=actions if recipe.memory == "successor" else None, drop=recipe.memory_drop,
                           jitter=recipe.memory_jitter)
    erased = ghosts = None
    if recipe.memory_erase > 0:
        t_er = time.time()
        erased = erased_latents(vae, ds, latents, recipe.memory_erase_kind, str(data))
        if progress:
            print(f"erased {recipe.memory_erase_kind}s: {time.time() - t_er:.1f} s", file=sys.stderr)
    if recipe.memory_ghost_weight != 1:
        ghosts = [object_cells(ep.state, recipe.memory_ghost_kind, len(ep.frames), frame_size, dyn_cfg.latent_size,
                               f"{data}: episode {i}") for i, ep in enumerate(ds)]
    return memory, erased, ghosts
