"""Static structure scored from the truth: are the walls drawn where the truth has them, frame by frame?

The object metrics score what the state reports (agent, balls, landmarks); walls are not objects, so
only whole-frame PSNR saw them, and ``../shared/tools/look.py`` shows what it misses: a wall the camera
scrolls left where it was, a wall entering the view never drawn, both blurred into the floor.

- **The score** is the intersection over union, per frame, of the pixels within ``TAU`` (RGB) of the
  world's structure colour in the generated frame and in the true one, over the frames where either has
  at least ``MIN_PX`` such pixels (a frame with no wall in either is not scored). A wall left behind costs
  twice: the pixels it should have left and the ones it should have covered.
- **Objects are left out**: the pixels within ``MARGIN`` px of any object the state reports (the arena
  agent's dark outline is the walls' colour, ~32 px in every frame) are scored in neither frame.
- **The colour comes from the env's registration** (the ``structure_color`` prior,
  :func:`worldloom.envs.registry.priors`), passed in by the caller; a world that states none is not scored.
- **Baselines the same way**: copy-last (a still view: what a model that does not scroll scores) and the
  tokenizer reconstruction (the ceiling, which blurs edges too).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

TAU = 40.0  # RGB distance within which a pixel is the structure's colour (eval/objects.FALSE_TAU's rule)
MIN_PX = 16  # structure pixels a frame needs, in the truth or the candidate, to be scored
MARGIN = 2  # px beyond an object's radius left out of the score


def object_mask(state: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """(E, N, H, W) True within ``MARGIN`` px of an object of the stacked ``state`` (E, N, ...) (eval/objects' convention)."""
    from .objects import objects_from_state

    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5  # pixel centres
    out = None
    for o in objects_from_state(state):
        for j in range(o.pos_view.shape[2]):  # one object at a time: (E, N, H, W), not (E, N, n, H, W)
            pv, r = o.pos_view[:, :, j], o.radius[:, :, j]  # (E, N, 2), (E, N)
            d2 = (xx - pv[..., 0, None, None]) ** 2 + (yy - pv[..., 1, None, None]) ** 2  # (E, N, H, W)
            near = d2 <= (r[..., None, None] + MARGIN) ** 2
            out = near if out is None else out | near
    return out if out is not None else np.zeros((*next(iter(state.values())).shape[:2], H, W), bool)


def structure_iou(frames: np.ndarray, truth: np.ndarray, color: Sequence[float],
                  exclude: np.ndarray | None = None) -> np.ndarray:
    """(E, N) IoU of the structure pixels of ``frames`` and ``truth`` (E, N, H, W, 3) uint8, outside the
    ``exclude`` mask (E, N, H, W); NaN where unscored."""
    c = np.asarray(color, np.float32)
    keep = True if exclude is None else ~exclude
    mine = (np.linalg.norm(frames.astype(np.float32) - c, axis=-1) < TAU) & keep  # (E, N, H, W)
    true = (np.linalg.norm(truth.astype(np.float32) - c, axis=-1) < TAU) & keep
    inter, union = (mine & true).sum((2, 3)), (mine | true).sum((2, 3))
    scored = (true.sum((2, 3)) >= MIN_PX) | (mine.sum((2, 3)) >= MIN_PX)
    return np.where(scored, inter / np.maximum(union, 1), np.nan)


def score_structure(cands: dict[str, np.ndarray], truth: np.ndarray, color: Sequence[float],
                    state: dict[str, np.ndarray] | None = None, spans: Sequence[int] | None = None) -> dict[str, Any]:
    """Per candidate: the IoU curve over horizons (mean over scored frames), its h1-s means for each of
    ``spans`` (default: eval/objects' SPANS and the whole rollout) and the frames scored. ``state``
    (E, N, ...), aligned with ``truth``, names the objects left out."""
    if spans is None:
        from .objects import SPANS

        spans = sorted({min(u, truth.shape[1]) for u in SPANS} | {truth.shape[1]})
    out: dict[str, Any] = {"color": [float(x) for x in color], "tau": TAU}
    exclude = object_mask(state, truth.shape[2:4]) if state else None
    for name, frames in cands.items():
        iou = structure_iou(frames, truth, color, exclude)  # (E, N)
        n = (~np.isnan(iou)).sum(0)  # (N,)
        curve = [float(np.nanmean(iou[:, h])) if n[h] else None for h in range(iou.shape[1])]
        means = {}
        for s in spans:
            if s <= len(curve):
                vals = [v for v in curve[:s] if v is not None]
                means[f"iou_h1_{s}"] = float(np.mean(vals)) if vals else None
        out[name] = {"iou": curve, "n_frames": int(n.sum()), **means}
    return out


def _columns_rows(res: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The wall table's header and rows (candidate, IoU per h1-s span or None, frames scored)."""
    names = [k for k, v in res.items() if isinstance(v, dict)]
    spans = sorted({k for n in names for k in res[n] if k.startswith("iou_h1_")}, key=lambda k: int(k.rsplit("_", 1)[1]))
    cols = ["", *[s.replace("iou_h1_", "h1-") for s in spans], "frames"]
    return cols, [[n, *[res[n][s] for s in spans], res[n]["n_frames"]] for n in names]


TITLE = "Walls (static structure, IoU of its colour's pixels with the truth's; frames with a wall in either)"


def structure_table(res: dict[str, Any]) -> Any:
    """The wall IoU table of :func:`score_structure` as a report :class:`~worldloom.eval.suite.Table`."""
    from .suite import Table

    cols, rows = _columns_rows(res)
    return Table(TITLE, cols, rows)


def structure_metrics(res: dict[str, Any], who: str = "model") -> dict[str, float | None]:
    """``who``'s headline wall scores: ``walls_iou_h1_S`` for each span :func:`score_structure` reached."""
    return {f"walls_{k}": v for k, v in res[who].items() if k.startswith("iou_h1_")}


def format_structure(res: dict[str, Any]) -> str:
    """Markdown lines: each candidate's wall IoU over h1-8 and h1-32 (or as far as the rollout went)."""
    cols, rows = _columns_rows(res)
    lines = [TITLE + ":", "", "| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for name, *ious, n in rows:
        cells = [f"{v:.1%}" if v is not None else "n/a" for v in ious]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines) + "\n"
