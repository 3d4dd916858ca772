"""Clips streamed by a ``DataLoader`` with worker processes, sharded over ranks by a ``DistributedSampler``.

The default way a dynamics run draws clips is in the training process, from the per-step generator
(``ClipSampler``): nothing to set up, and exact across resumes and world sizes. At scale the clip reads
(from a memory-mapped latent cache, training/latents.py) and their collation move to ``workers``
processes instead (``--train-workers N``), as ``torch.utils.data`` does it:
- every window (episode, start) of every episode is one item (``ClipWindows``); an epoch visits each
  once, shuffled by ``DistributedSampler`` (seed + epoch) and split into disjoint per-rank shards;
- ``ClipStream`` is a drop-in for ``ClipSampler`` (same call, same ``picks`` for memory frames);
  ``start(step)`` positions it at the batch an uninterrupted run would draw next, so ``--resume``
  stays exact: the sampler skips the indices of the batches already trained on, without reading them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .latents import clip


class ClipWindows(Dataset):
    """Every window of ``clip_len`` frames of a ``ClipSampler``'s episodes: item i -> its tensors and (episode, start)."""

    def __init__(self, clips: Any) -> None:
        self.clips = clips
        counts = clips.n_windows.long()
        self.first = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])  # (E + 1,) window offsets

    def __len__(self) -> int:
        return int(self.first[-1])

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        e = int(torch.searchsorted(self.first, torch.tensor(i), right=True)) - 1
        s, T, c = i - int(self.first[e]), self.clips.clip_len, self.clips
        items = [clip(c.latents[e], s, T), c.actions[e][s : s + T]]
        if c.axes is not None:
            items.append(c.axes[e][s : s + T])
        return (*items, torch.tensor([e, s]))


class _FromOffset(Sampler[int]):
    """A ``DistributedSampler``'s epoch, from its ``offset``-th index (a resumed run's place in it)."""

    def __init__(self, inner: DistributedSampler) -> None:
        self.inner, self.offset = inner, 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.inner)[self.offset:])

    def __len__(self) -> int:
        return len(self.inner) - self.offset


class ClipStream:
    """``ClipSampler``'s interface over a ``DataLoader``: rank ``rank`` of ``world``, ``accum`` micro-batches a step."""

    def __init__(self, clips: Any, batch_size: int, workers: int, rank: int = 0, world: int = 1, seed: int = 0,
                 accum: int = 1) -> None:
        self.clip_len, self.keep, self.batch_size, self.accum = clips.clip_len, clips.keep, batch_size, accum
        self.windows = ClipWindows(clips)
        inner = DistributedSampler(self.windows, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.per_epoch = len(inner) // batch_size  # batches this rank draws per epoch
        if self.per_epoch < 1:
            raise ValueError(f"{len(self.windows)} clip windows over {world} rank(s) make no batch of {batch_size}")
        self.sampler = _FromOffset(inner)
        self.workers = workers
        self.picks: list[tuple[int, int]] = []
        self._it: Iterator[Any] | None = None
        self.start(0)

    def start(self, step: int) -> None:
        """Draw next what an uninterrupted run draws at optimizer step ``step`` (its first micro-batch)."""
        self.epoch, done = divmod(step * self.accum, self.per_epoch)
        self._open(done * self.batch_size)

    def _open(self, offset: int) -> None:
        self.sampler.inner.set_epoch(self.epoch)
        self.sampler.offset = offset
        self._left = self.per_epoch - offset // self.batch_size
        loader = DataLoader(self.windows, batch_size=self.batch_size, sampler=self.sampler, num_workers=self.workers,
                            drop_last=True, persistent_workers=False)
        self._it = iter(loader)

    def __call__(self, gen: torch.Generator, batch_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """The next batch: (latents (B, T, C, h, w), actions (B, T)[, axes (B, T, A)]) on ``device``."""
        if batch_size != self.batch_size:
            raise ValueError(f"ClipStream was built for batches of {self.batch_size}, asked for {batch_size}")
        if self._left == 0:
            self.epoch += 1
            self._open(0)
        assert self._it is not None
        *items, where = next(self._it)
        self._left -= 1
        self.picks = [(int(e), int(s)) for e, s in where]
        return tuple(t.to(device) for t in items)
