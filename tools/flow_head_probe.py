"""Is a 'warp' model's flow the objects' velocity? The head's flow at each moving object's cell against its true step.

    .venv/bin/python tools/flow_head_probe.py CHECKPOINT DATA [--episodes 40] [--starts 8,20,36,52]

For each start s and episode the Simulator is reset on the 4 true frames before s and generates frame s
under the true action (as ``tools/teacher_forced_ball_probe.py`` does); forward hooks on the DiT's head
(and its conv refiner, which corrects the flow, if it has one) read the flow it uses for frame s. For every ball (and the agent) that is inside the view's inner
part at s and moved more than 0.5 px, the flow at the latent cell it lands in is compared with the flow
that would move it exactly: minus its step, in latent cells (``flow_warp`` samples ``prev[y + dy, x + dx]``).
Prints, per kind, the correlation per axis and the least-squares slope (1 = the flow moves it all the way).

With a camera in the state (the arena), it also scores the flow against the view's own scroll, over every
latent cell, on steps where the camera stood and where it moved: the mean distance from the true scroll, the
share of cells more than 0.2 cells off a whole cell (a bilinear blend of two cells: each such frame blurs
what the previous frame carried), and the share whose nearest whole cell is not the true scroll.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--starts", default="8,20,36,52")
    a = ap.parse_args()

    import torch

    import worldloom
    from worldloom.data.format import Dataset

    torch.set_flush_denormal(True)
    model = worldloom.load(a.checkpoint)
    if model.dit.cfg.pred != "warp":
        raise SystemExit(f"{a.checkpoint}: its head is {model.dit.cfg.pred!r}, not 'warp': it predicts no flow")
    ds = Dataset.open(a.data)
    eps = [ds[i] for i in range(min(a.episodes, len(ds)))]
    cell = model.vae.cfg.downsample  # px per latent cell
    size = model.vae.cfg.frame_size
    heads: list[torch.Tensor] = []
    refined: list[torch.Tensor] = []
    hooks = [model.dit.out.register_forward_hook(lambda m, i, o: heads.append(o.detach()))]
    if model.dit.refine is not None:  # the conv refiner corrects the flow too: the flow used is the sum
        hooks.append(model.dit.refine.register_forward_hook(lambda m, i, o: refined.append(o.detach())))
    C = 4
    got: dict[str, tuple[list, list]] = {"ball": ([], []), "agent": ([], [])}
    scroll: tuple[list, list] = ([], [])  # per start: flows (E, 2, h, w) and the true scroll (E, 2), in cells
    for s in map(int, a.starts.split(",")):
        fr = np.stack([np.array(e.frames[s - C: s + 1]) for e in eps])  # (E, C + 1, H, W, 3)
        ac = np.stack([np.array(e.actions[s - C: s + 1]) for e in eps])
        sim = worldloom.Simulator(model, batch=len(eps))
        sim.reset(fr[:, :C], ac[:, :C])
        heads.clear()
        refined.clear()
        sim.rollout(ac[:, C:])
        flow = model.dit._unpatchify(heads[-1].float())[:, -1, -2:]  # (E, 2, h, w): (dx, dy) cells
        if refined:
            flow = flow + refined[-1].float()[:, -1, -2:]
        flow = flow.numpy()
        if "camera" in eps[0].state:
            cam = np.stack([np.array(e.state["camera"][s - 1: s + 1]) for e in eps]).astype(np.float32)  # (E, 2, 2) px
            scroll[0].append(flow)
            scroll[1].append((cam[:, 1] - cam[:, 0]) / cell)
        for kind in got:
            pos = np.stack([np.array(e.state[f"{kind}_pos_view"][s - 1: s + 1]) for e in eps])  # (E, 2, [n,] 2) px (x, y)
            if pos.ndim == 3:
                pos = pos[:, :, None]
            for b in range(len(eps)):
                for j in range(pos.shape[2]):
                    p0, p1 = pos[b, 0, j], pos[b, 1, j]
                    if not (np.isfinite(p1).all() and np.isfinite(p0).all()) or not ((cell <= p1) & (p1 < size - cell)).all():
                        continue
                    if np.linalg.norm(p1 - p0) <= 0.5:
                        continue
                    got[kind][0].append(flow[b, :, int(p1[1] // cell), int(p1[0] // cell)])
                    got[kind][1].append(-(p1 - p0) / cell)
    for h in hooks:
        h.remove()
    out: dict = {"checkpoint": a.checkpoint}
    for kind, (pr, tr) in got.items():
        if len(pr) < 3:
            continue
        pr, tr = np.array(pr), np.array(tr)
        out[kind] = {"n": len(pr), "true_abs_cells": round(float(np.abs(tr).mean()), 3), "flow_abs_cells": round(float(np.abs(pr).mean()), 3),
                     "corr_xy": [round(float(np.corrcoef(pr[:, i], tr[:, i])[0, 1]), 3) for i in (0, 1)],
                     "slope": round(float((pr * tr).sum() / (tr ** 2).sum()), 3)}
    if scroll[0]:
        fl, tr = np.concatenate(scroll[0]), np.concatenate(scroll[1])
        moved = ~(tr == 0).all(1)
        out["scroll"] = {}
        for name, m in (("still", ~moved), ("moving", moved)):
            if m.sum():
                f, t = fl[m], tr[m][:, :, None, None]
                out["scroll"][name] = {"n": int(m.sum()), "mean_abs_err_cells": round(float(np.abs(f - t).mean()), 3),
                                       "blend_share": round(float((np.abs(f - np.round(f)) > 0.2).mean()), 3),
                                       "wrong_cell_share": round(float((np.round(f) != t).mean()), 3)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
