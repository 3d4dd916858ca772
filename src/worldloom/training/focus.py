"""Clips drawn where objects move: ``DynamicsRecipe.clip_focus`` (training only; ground truth from the state).

Uniform clip sampling gives a moving object to few training frames when objects are sparse: under the
arena's collection policy a moving ball is fully in view in 17 % of frames (40 training episodes of
``runs/arena/data-train``). A share ``clip_focus`` of each batch is instead drawn with probability
proportional to how many object-frames of the clip's targets hold an object that moves against the
background; the rest stay uniform, so the model still sees every kind of clip.

Key choices:

- **Objects from the state's convention** (:func:`worldloom.eval.objects.objects_from_state`: every
  ``<kind>_pos_view`` with a radius and a colour), so any world that the object metrics score can be
  focused with no code of its own. Training may read the truth; nothing at run time does.
- **"Moves against the background"** = fully in view in this frame and the one before, and moved more
  than ``MIN_STEP`` px both in the view and in the world (``<kind>_pos``, where the state has it). That
  leaves out what only scrolls (a landmark under a following camera) and what the camera carries (the
  agent it follows). A generic score needs no state, the cells the shifted previous latent does not
  explain (:func:`worldloom.shift.unexplained`), but it barely tells these frames apart in the arena:
  correlation 0.17 with "a moving ball in view", its top tenth holding 28 % such frames against 17 %,
  because the scrolled floor's sub-cell residue is everywhere.
- **Kinds can be chosen** (``clip_focus_kinds``): the arena's agent moves in its view in 25 % of frames
  (the camera stops at the world's edge), and it is drawn well already; balls move in view in 16 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

MIN_STEP = 0.5  # px a step: an object that moves less counts as still


def moving_objects(state: dict[str, np.ndarray], frame_size: int, kinds: tuple[str, ...] = ()) -> np.ndarray:
    """(T,) per frame of one episode: objects fully in view now and a frame before, moving against the
    background; of the given ``kinds`` only (default: every kind in the state)."""
    from ..eval.objects import objects_from_state

    T = len(next(iter(state.values()))) if state else 0
    out = np.zeros(T)
    for o in objects_from_state({k: np.asarray(v)[None] for k, v in state.items()}):
        if kinds and o.kind not in kinds:
            continue
        pv, r = o.pos_view[0], o.radius[0][..., None]  # (T, n, 2), (T, n, 1)
        inside = ((pv >= r) & (pv <= frame_size - r)).all(-1)  # (T, n)
        moved = np.zeros_like(inside)
        step_view = np.linalg.norm(np.diff(pv, axis=0), axis=-1) > MIN_STEP  # (T - 1, n)
        if o.pos is not None:
            step_view &= np.linalg.norm(np.diff(o.pos[0], axis=0), axis=-1) > MIN_STEP
        moved[1:] = step_view & inside[1:] & inside[:-1]
        out += moved.sum(-1)
    return out


def window_weights(counts: list[np.ndarray], clip_len: int, where: str | Path) -> list[torch.Tensor]:
    """Per episode, (n_windows,): moving object-frames among each window's frames after its first.

    Raises ValueError naming ``where`` when no window of any episode holds a moving object.
    """
    out = []
    for c in counts:
        cs = np.concatenate([[0.0], np.cumsum(c)])
        n = len(c) - clip_len + 1
        s = np.arange(max(n, 0))
        out.append(torch.from_numpy(cs[s + clip_len] - cs[s + 1]).float())
    if not any(float(w.sum()) > 0 for w in out):
        raise ValueError(f"{where}: clip_focus needs objects that move in view (state keys <kind>_pos_view, "
                         "<kind>_radius, <kind>_color), and no clip of this dataset has one")
    return out


def dataset_focus(ds, clip_len: int, kinds: tuple[str, ...] = ()) -> list[torch.Tensor]:
    """Window weights for every episode of a :class:`~worldloom.data.format.Dataset`."""
    from ..eval.objects import objects_from_state

    size = int(ds.frame_shape[0])
    known = {o.kind for o in objects_from_state({k: np.asarray(v)[None] for k, v in ds[0].state.items()})} if len(ds) else set()
    if set(kinds) - known:
        raise ValueError(f"{ds.path}: clip_focus_kinds {','.join(kinds)!r}: no such object kind in the state; "
                         f"known: {', '.join(sorted(known)) or 'none'}")
    return window_weights([moving_objects(ds[i].state, size, kinds) for i in range(len(ds))], clip_len, ds.path)
