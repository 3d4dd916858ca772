"""The context policies: the window alone, sinks, retrieval by place, retrieval by latent similarity.

- ``window``: no frame beyond the rolling window (every checkpoint's behaviour before memory existed).
- ``sink``: the rollout's first frames, kept forever, placed in time right before the window.
- ``place``: a bank of one frame per visited place cell (its newest view), each with the camera pose it was seen from.
  Each step the entries whose view overlaps the current view most are attended, shifted in space by
  their offset from the current view (RoPE rows/cols in tokens, fractions allowed), so a revisited
  place can be copied instead of invented. The pose comes from the actions where the checkpoint carries
  an odometry fit on its training data (:mod:`worldloom.memory.odometry`; ``pose="auto"`` or ``"actions"``),
  the model's frames choosing only the camera's snap phase; otherwise (``"frames"``) it is integrated from
  the model's own frames: the whole-latent-cell shift between consecutive latents
  (:func:`worldloom.shift.cell_shift`, the central square of the env's agent_half_px prior left out of the
  vote: without that, the arena's agent, which the camera keeps centred, outvoted the smooth floor and the
  true latents read "no motion" on 17 of 20 moving steps; with it, 20 of 20 are exact), for a camera that
  snaps to latent cells, as the arena's does. The frames' pose drifts with every step the model scrolls
  wrong (median 22 px after 128 steps of validation free play, against 10 px from the actions). The bank holds at most
  ``bank`` cells (least recently seen dropped), so memory stays flat however long the rollout.
- ``place_first``: the same, keeping each cell's first view instead of its newest.
- ``place_early``: ``place_first``, recalling the earliest of the views that cover at least ``min_overlap`` of the
  current one (then the most overlap) instead of the most overlapping: a generated view drifts with its age, and
  the oldest ones are the rollout's true context. On 60 validation rollouts of the arena, on the same weights, it keeps
  74.2 % of the landmarks seen in the context over h1-32 against 68.3 % for ``place_first`` (39.2 % with the window
  alone; there ``place_first``'s first slot held a true frame on 17 % of steps h17-32), and returns 32/128/512 frames
  away score 32.8/32.4/33.9 dB static PSNR against 32.7/32.2/33.6 (docs/BENCHMARKS.md, "Memory", twenty-seventh
  session).
- ``similar``: pose-free, for any env or imported video: every ``stride`` frames the latent joins a
  bounded bank unless a near-duplicate is there already (which then counts as just seen; the least
  recently seen goes when the bank is full); each step the entries most like the newest frame
  (cosine of 4x4-pooled latents) are attended, unshifted. Unlike ``place``, which keeps each place's
  newest view, a revisit is found by looking like the place, so the first view is the one kept.
- ``similar_aligned``: ``similar``, each frame placed where its content lines up with the newest frame's: the
  whole-latent-cell shift (up to :data:`REACH` cells a side) that explains the newest latent by the remembered one
  (:func:`register`, the same matcher ``place`` integrates its pose with, used here between two frames: no pose is
  kept or integrated). For a view that scrolls (a top-down camera following the agent), a bank entry seen a few
  steps from the current spot is copied into the right cells instead of over them; where nothing lines up
  (a first-person turn) the shift reads 0 and it is ``similar``. Every frame joins the bank (``stride`` 1; near
  twins refresh the kept one instead), so the rollout's true context frames, which a return most often comes
  back to, are all there; the bank stays bounded as ``similar``'s. In MiniGrid's four rooms followed from above, a model trained with it
  returns to views ~62 / ~111 frames later 1.23 / 1.15 dB better than a control trained the same steps with the
  window alone (100 test episodes; docs/BENCHMARKS.md, "Memory", twenty-eighth session); there it moved 4 % of
  the frames it recalled and scored as ``similar`` does, the most similar frames being mostly from the same spot.
- ``successor``: pose-free as well, and for worlds whose view can change all at once (a turn in a
  first-person gridworld): the bank holds transitions, each frame keyed by the frame before it and the
  action between them. Each step it attends to the frames that followed the past frames most like the
  newest one under the action now taken: what happened last time here, after this action. A gridworld
  model trained with it gains 0.17 dB from it on returns 60 frames away and does not beat a control
  trained with the window alone (docs/BENCHMARKS.md, "Memory": at 14-17 dB returns the base model,
  not the retrieval, is the limit).

Every memory frame is placed ``window`` frames before the frame being generated (the sinks one
further back each, oldest first), so the time distance a memory frame shows is constant however
long the rollout has run.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from ..shift import cell_shift
from .base import Entry, Geometry, MemoryPolicy, Selection
from .odometry import SnapTracker


class WindowMemory(MemoryPolicy):
    name = "window"


class SinkMemory(MemoryPolicy):
    name = "sink"

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"sink memory needs >= 1 slot, got {slots}")
        self.slots = slots

    def reset(self, batch: int, geometry: Geometry) -> None:
        super().reset(batch, geometry)
        self.kept: list[list[Entry]] = [[] for _ in range(batch)]

    def observe(self, index: int, z: torch.Tensor, action: torch.Tensor | None = None) -> None:
        if index < self.slots:
            for b in range(self.batch):
                self.kept[b].append(self._entry(z[b], index))

    def select(self, index: int, window: int, action: torch.Tensor | None = None) -> Selection:
        sel = self.empty()
        for b, row in enumerate(self.kept):
            for j, e in enumerate(row):
                if index - e.index >= window:
                    sel.entries[b][j] = e
        sel.time[:] = torch.arange(index - window - self.slots + 1, index - window + 1, dtype=torch.float64)
        return sel


    def bank_size(self) -> int:
        return sum(len(r) for r in self.kept)

    def nbytes(self) -> int:
        return sum(e.z.numel() * e.z.element_size() for r in self.kept for e in r)


class _Bank(MemoryPolicy):
    """A bounded bank of entries per batch row, keyed by the policy, least recently stored dropped first."""

    def __init__(self, slots: int, bank: int) -> None:
        if slots < 1 or bank < slots:
            raise ValueError(f"{self.name} memory needs slots >= 1 and bank >= slots, got slots {slots}, bank {bank}")
        self.slots, self.bank = slots, bank

    def reset(self, batch: int, geometry: Geometry) -> None:
        super().reset(batch, geometry)
        self.banks: list[OrderedDict[Any, Entry]] = [OrderedDict() for _ in range(batch)]

    def _store(self, b: int, key: Any, e: Entry) -> None:
        bank = self.banks[b]
        bank.pop(key, None)
        bank[key] = e
        while len(bank) > self.bank:
            bank.popitem(last=False)


    def bank_size(self) -> int:
        return sum(len(b) for b in self.banks)

    def nbytes(self) -> int:
        return sum(e.z.numel() * e.z.element_size() for b in self.banks for e in b.values())


class PlaceMemory(_Bank):
    name = "place"
    POSES = ("auto", "frames", "actions")

    def __init__(self, slots: int = 2, bank: int = 256, min_overlap: float = 0.25, pose: str = "auto") -> None:
        super().__init__(slots, bank)
        if pose not in self.POSES:
            raise ValueError(f"{self.name} memory: pose {pose!r} unknown; known: {', '.join(self.POSES)}")
        self.min_overlap, self.pose_from = min_overlap, pose

    def reset(self, batch: int, geometry: Geometry) -> None:
        super().reset(batch, geometry)
        if self.pose_from == "actions" and geometry.odometry is None:
            raise ValueError(f"{self.name} memory: pose 'actions' needs the checkpoint's odometry (config.json: odometry), "
                             "which a model trained on data without a recorded position lacks; use pose 'frames'")
        self.tracker = None if self.pose_from == "frames" or geometry.odometry is None else \
            SnapTracker(geometry.odometry, batch, geometry.cell_px)
        self.pose = torch.zeros((batch, 2), dtype=torch.float64)  # camera (x, y) px, 0 at the first frame
        self.last: torch.Tensor | None = None

    def observe(self, index: int, z: torch.Tensor, action: torch.Tensor | None = None) -> None:
        if self.last is not None:  # content moved by -d cells: the camera moved by +d
            g = self.geometry  # a centred agent stays put while the view scrolls: it does not vote
            ignore = max(1, round(g.agent_half_px / g.cell_px)) if g.agent_half_px >= 0 else 0
            seen = cell_shift(self.last, z, ignore=ignore).double().cpu() * g.cell_px  # (B, 2) px
            if self.tracker is None:
                self.pose += seen
            elif action is None:  # a context frame without its action: the frames alone move the pose
                self.pose = self.tracker.coast(seen)
            else:
                self.pose = self.tracker.update(action.cpu(), seen)
        self.last = z.detach().clone()
        cell = self.geometry.token_px
        for b in range(self.batch):
            x, y = float(self.pose[b, 0]), float(self.pose[b, 1])
            self._store(b, (round(x / cell), round(y / cell)), self._entry(z[b], index, (x, y)))

    def select(self, index: int, window: int, action: torch.Tensor | None = None) -> Selection:
        sel = self.empty()
        tok = self.geometry.token_px
        for b, bank in enumerate(self.banks):
            old = [e for e in bank.values() if index - e.index >= window]
            if not old:
                continue
            d = torch.tensor([e.pose for e in old], dtype=torch.float64) - self.pose[b]  # (n, 2) px (dx, dy)
            ov = self.geometry.view_overlap(d).tolist()
            order = sorted((i for i in range(len(old)) if ov[i] >= self.min_overlap), key=lambda i: self._rank(old[i], ov[i]))
            for j, i in enumerate(order[: self.slots]):
                sel.entries[b][j] = old[i]
                sel.offset[b, j] = d[i].flip(0) / tok  # (rows, cols) tokens
        sel.time[:] = index - window
        return sel

    def _rank(self, e: Entry, overlap: float) -> tuple[float, float]:
        """Sort key of a candidate entry (lower = recalled first): the most overlap, then the newest."""
        return -overlap, -e.index

    def state(self) -> dict[str, Any]:
        return super().state() | {"pose_px": [[round(float(v), 1) for v in p] for p in self.pose],
                                  "pose_from": "frames" if self.tracker is None else "actions"}


class FirstPlaceMemory(PlaceMemory):
    """``place`` that keeps each place cell's first view: a cell seen again only counts as just seen (for the
    bank's bound), so a return finds what the place looked like when it was first seen, not the rollout's
    latest, most drifted, view of it on the way back."""

    name = "place_first"

    def _store(self, b: int, key: Any, e: Entry) -> None:
        bank = self.banks[b]
        if key in bank:
            bank.move_to_end(key)
            return
        super()._store(b, key, e)


class EarlyPlaceMemory(FirstPlaceMemory):
    """``place_first`` that recalls the earliest of the views covering at least ``min_overlap`` of the current one,
    then the most overlapping: the model's own views drift with their age, so the oldest view of a place (at the
    start of a rollout, a true context frame) is the one to copy from, even where a newer one covers more of the
    view (the copy gate takes each cell from the first slot that covers it, the rest from the next)."""

    name = "place_early"

    def _rank(self, e: Entry, overlap: float) -> tuple[float, float]:
        return e.index, -overlap


REACH = 4
"""Largest shift, in latent cells a side, at which ``similar_aligned`` (and its training draw) looks for a
remembered frame's place in the current view: 4 cells = 16 px of a 64 px frame, two tiles of a gridworld followed
8 tiles across."""


def register(z: torch.Tensor, query: torch.Tensor, reach: int = REACH) -> torch.Tensor:
    """Where remembered latents ``z`` (N, C, h, w) sit in the view of ``query`` (C, h, w): (N, 2) (rows, cols) in
    latent cells, the whole-cell shift that lines their content up with it best (0 where none does better)."""
    d = cell_shift(z, query.to(z.dtype).expand_as(z), max_shift=reach)  # (N, 2) (dx, dy): camera motion z -> query
    return -d.flip(-1).double()  # its content sits the other way: (rows, cols)


def descriptor(z: torch.Tensor) -> torch.Tensor:
    """Latents (B, C, h, w) -> unit vectors (B, C*16) of their 4x4-pooled, mean-free cells."""
    d = torch.nn.functional.adaptive_avg_pool2d(z.float(), 4).flatten(1)
    d = d - d.mean(1, keepdim=True)
    return d / d.norm(dim=1, keepdim=True).clamp_min(1e-8)


class _KeyedBank(_Bank):
    """A bank whose entries are found by a key descriptor (cosine with the newest frame's) and a tag
    (an action, or None for any): the pose-free policies. A new entry whose key is a near twin
    (>= ``twin``) of one with the same tag is not stored; the remembered one is kept fresh instead."""

    def __init__(self, slots: int, bank: int, min_sim: float, twin: float) -> None:
        super().__init__(slots, bank)
        self.min_sim, self.twin = min_sim, twin

    def reset(self, batch: int, geometry: Geometry) -> None:
        super().reset(batch, geometry)
        self.query: torch.Tensor | None = None  # (B, D) descriptor of the newest frame
        self.keys: list[dict[int, tuple[torch.Tensor, int | None]]] = [{} for _ in range(batch)]  # uid -> (key, tag)

    def _remember(self, b: int, key: torch.Tensor, tag: int | None, z: torch.Tensor, index: int) -> None:
        bank, keys = self.banks[b], self.keys[b]
        twin = max(((u, float(k @ key)) for u, (k, t) in keys.items() if t == tag), key=lambda s: s[1], default=None)
        if twin is not None and twin[1] >= self.twin:
            bank.move_to_end(twin[0])  # known: the first view stays (it is what a revisit copies), kept fresh
            return
        e = self._entry(z, index)
        keys[e.uid] = (key, tag)
        self._store(b, e.uid, e)
        for uid in [u for u in keys if u not in bank]:
            del keys[uid]  # evicted by the bound

    def _pick(self, index: int, window: int, tags: list[int] | None) -> Selection:
        """The entries outside the window whose keys are most like the newest frame (tag = ``tags[b]``)."""
        sel = self.empty()
        if self.query is not None:
            for b, bank in enumerate(self.banks):
                keys = self.keys[b]
                scored = sorted(((float(keys[e.uid][0] @ self.query[b]), e.index, e) for e in bank.values()
                                 if index - e.index >= window and (tags is None or keys[e.uid][1] == tags[b])),
                                key=lambda s: (-s[0], -s[1]))
                for j, (_, _, e) in enumerate([s for s in scored if s[0] >= self.min_sim][: self.slots]):
                    sel.entries[b][j] = e
        sel.time[:] = index - window
        return sel


class SimilarMemory(_KeyedBank):
    name = "similar"

    def __init__(self, slots: int = 2, bank: int = 64, stride: int = 4, min_sim: float = 0.5, twin: float = 0.97) -> None:
        super().__init__(slots, bank, min_sim, twin)
        if stride < 1:
            raise ValueError(f"similar memory needs stride >= 1, got {stride}")
        self.stride = stride

    def observe(self, index: int, z: torch.Tensor, action: torch.Tensor | None = None) -> None:
        self.query = d = descriptor(z).cpu()  # (B, D)
        if index % self.stride == 0:
            for b in range(self.batch):
                self._remember(b, d[b], None, z[b], index)

    def select(self, index: int, window: int, action: torch.Tensor | None = None) -> Selection:
        return self._pick(index, window, None)


class AlignedSimilarMemory(SimilarMemory):
    name = "similar_aligned"

    def __init__(self, slots: int = 2, bank: int = 64, stride: int = 1, min_sim: float = 0.5, twin: float = 0.97,
                 reach: int = REACH) -> None:
        super().__init__(slots, bank, stride, min_sim, twin)
        if reach < 0:
            raise ValueError(f"similar_aligned memory needs reach >= 0, got {reach}")
        self.reach = reach

    def observe(self, index: int, z: torch.Tensor, action: torch.Tensor | None = None) -> None:
        super().observe(index, z, action)
        self.newest = z.detach().float().cpu()  # (B, C, h, w): what the chosen frames are lined up with

    def select(self, index: int, window: int, action: torch.Tensor | None = None) -> Selection:
        sel = super().select(index, window, action)
        scale = self.geometry.cell_px / self.geometry.token_px  # cells -> tokens
        for b, row in enumerate(sel.entries):
            slots = [j for j, e in enumerate(row) if e is not None]
            if slots:
                z = torch.stack([row[j].z.float().cpu() for j in slots])  # type: ignore[union-attr]  # (n, C, h, w)
                sel.offset[b, slots] = (register(z, self.newest[b], self.reach) * scale).to(sel.offset.dtype)
        return sel


class SuccessorMemory(_KeyedBank):
    name = "successor"

    def __init__(self, slots: int = 2, bank: int = 256, min_sim: float = 0.5, twin: float = 0.97) -> None:
        super().__init__(slots, bank, min_sim, twin)

    def observe(self, index: int, z: torch.Tensor, action: torch.Tensor | None = None) -> None:
        before, self.query = self.query, descriptor(z).cpu()  # (B, D)
        if before is None or action is None:
            return  # the first frame, or no action known: no transition to remember
        for b, a in enumerate(action.reshape(-1).tolist()):
            self._remember(b, before[b], int(a), z[b], index)  # keyed by the frame before, tagged by the action

    def select(self, index: int, window: int, action: torch.Tensor | None = None) -> Selection:
        return self._pick(index, window, None if action is None else [int(a) for a in action.reshape(-1).tolist()])


MEMORIES: dict[str, type[MemoryPolicy]] = {c.name: c for c in (WindowMemory, SinkMemory, PlaceMemory, FirstPlaceMemory, EarlyPlaceMemory,
                                                                SimilarMemory, AlignedSimilarMemory, SuccessorMemory)}


def make_memory(name: str, slots: int = 2, bank: int = 256, pose: str = "auto") -> MemoryPolicy:
    """The policy called ``name`` with ``slots`` memory frames per step and a bank of ``bank`` entries
    (``pose``: where place memories read the camera pose from, :attr:`PlaceMemory.POSES`)."""
    if name not in MEMORIES:
        raise ValueError(f"unknown memory {name!r}; known: {', '.join(MEMORIES)}")
    if name == "window":
        return WindowMemory()
    if name == "sink":
        return SinkMemory(slots)
    if issubclass(MEMORIES[name], PlaceMemory):
        return MEMORIES[name](slots=slots, bank=bank, pose=pose)
    return MEMORIES[name](slots=slots, bank=bank)

