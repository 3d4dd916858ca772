"""Where a model loses the landmarks it was shown: held-out rollouts split by what happened to each landmark, with
what the memory and the copy gate did on its cells.

    .venv/bin/python tools/landmark_losses.py CHECKPOINT DATA [--episodes 60] [--memory M]

Rolls out the first episodes of DATA as ``worldloom eval --data`` does (4 true frames, then 32 under the true actions,
the checkpoint's play settings unless ``--memory`` names another policy) and scores the landmarks seen in the context
and in the true view at h with :func:`worldloom.eval.objects.detect`, split by horizon band:

- landmarks in view at every step since the context, and those that left the view and came back;
- by distance from the view's edge (the centred agent walks over the far ones);
- for a model with a copy gate (``DynamicsConfig.mem_copy``): the gate and the memory cover on the landmark's
  latent cell, drawn against lost, and how often the first memory slot held a true context frame.
"""
from __future__ import annotations

import argparse

import numpy as np

BANDS = ((1, 8), (9, 16), (17, 32))
EDGES = ((0, 4), (4, 10), (10, 20), (20, 64))  # px from the view's edge to the landmark's


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--episodes", type=int, default=60)
    ap.add_argument("--memory", default=None, help="context policy (default: the checkpoint's)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch

    from worldloom.data.format import Dataset
    from worldloom.eval.objects import detect, objects_from_state
    from worldloom.models.mem_copy import align
    from worldloom.runtime.loading import load
    from worldloom.runtime.simulator import Simulator

    torch.set_flush_denormal(True)
    torch.set_num_threads(a.threads)
    m, ds, C, N = load(a.checkpoint), Dataset.open(a.data), 4, 32
    eps = [ds[i] for i in range(len(ds)) if ds.lengths[i] >= C + N][: a.episodes]
    frames = np.stack([np.array(e.frames[: C + N]) for e in eps])  # (E, C + N, H, W, 3)
    acts = np.stack([np.array(e.actions[: C + N]) for e in eps]).astype(np.int64)
    keys = set.intersection(*(set(e.state) for e in eps))
    state = {k: np.stack([np.array(e.state[k][C - 1 : C + N]) for e in eps]) for k in sorted(keys)}
    E, H = len(eps), frames.shape[2]
    h = m.vae.cfg.latent_size
    gen = np.empty((E, N, *frames.shape[2:]), np.uint8)
    gate = np.full((E, N, h, h), np.nan, np.float32)
    cover = np.zeros((E, N, h, h), bool)
    slot0 = np.full((E, N), -1)  # frame index the first memory slot held (-1: empty)
    for i in range(0, E, 10):
        j = min(i + 10, E)
        sim = Simulator(m, batch=j - i, seed=0, **({"memory": a.memory} if a.memory else {}))
        sim.reset(frames[i:j, :C], acts[i:j, :C])
        for t in range(N):
            gen[i:j, t] = sim.render(sim.step_latent(acts[i:j, C + t]))
            sel = getattr(sim, "selection", None)
            if m.dit.mem_copy is not None and m.dit.mem_copy.last_gate is not None:
                gate[i:j, t] = m.dit.mem_copy.last_gate[:, -1, 0].float().numpy()
            if sel is not None and sel.valid.any():
                _, cv = align(torch.ones((j - i, sel.valid.shape[1], 1, h, h)), sel.offset, sel.valid, m.dit.cfg.patch)
                cover[i:j, t] = cv[:, 0].numpy() > 0
                slot0[i:j, t] = [-1 if row[0] is None else row[0].index for row in sel.entries]
    truth = frames[:, C - 1 :]
    objs = objects_from_state(state)
    lm = next((o for o in objs if o.kind == "landmark"), None)
    if lm is None:
        raise SystemExit(f"{a.data}: the state reports no landmarks (landmark_pos_view, _radius, _color)")
    det = detect({"model": np.concatenate([truth[:, :1], gen], 1)}, truth, objs)
    vis = det["visible"]["landmark"]  # (E, 1 + N, n)
    drawn = ~np.isnan(det["centroid"]["model"]["landmark"][..., 0]) & vis
    scored = vis & vis[:, :1]  # seen in the context, in view at h
    stayed = np.cumprod(vis, axis=1).astype(bool)
    pv = lm.pos_view  # (E, 1 + N, n, 2)
    edge = np.minimum(np.minimum(pv[..., 0], H - pv[..., 0]), np.minimum(pv[..., 1], H - pv[..., 1])) - lm.radius
    cell = H / h
    row = np.clip((pv[..., 1] // cell).astype(int), 0, h - 1)[:, 1:]
    col = np.clip((pv[..., 0] // cell).astype(int), 0, h - 1)[:, 1:]
    e_, t_ = np.meshgrid(np.arange(E), np.arange(N), indexing="ij")
    g_on = gate[e_[..., None], t_[..., None], row, col]  # (E, N, n): the gate on each landmark's cell
    c_on = cover[e_[..., None], t_[..., None], row, col]

    def share(x: np.ndarray, sel: np.ndarray) -> str:
        return f"{100 * (x & sel).sum() / sel.sum():5.1f} %" if sel.sum() else "    -"

    def pct(x: np.ndarray, sel: np.ndarray) -> str:
        return f"{share(x, sel)} ({sel.sum()})"

    print(f"{a.checkpoint}, {E} rollouts of {a.data}, memory {sim.cfg.resolved_memory()[0]}: landmarks seen in the context")
    for lo, hi in BANDS:
        s = slice(lo, hi + 1)
        sc, d = scored[:, s], drawn[:, s]
        line = (f"h{lo}-{hi}: drawn {pct(d, sc)}; stayed in view {pct(d, sc & stayed[:, s])}, "
                f"left and came back {pct(d, sc & ~stayed[:, s])}")
        if not np.isnan(gate).all():
            g, c, s0 = g_on[:, lo - 1 : hi], c_on[:, lo - 1 : hi], slot0[:, lo - 1 : hi]
            line += (f"; gate on drawn {np.nanmean(g[sc & d]):.2f}, on lost {np.nanmean(g[sc & ~d]):.2f}; memory covers "
                     f"drawn {share(c, sc & d)}, lost {share(c, sc & ~d)}; first slot a true "
                     f"context frame on {100 * ((s0 >= 0) & (s0 < C)).mean():.0f} % of steps")
        print(line)
    for lo, hi in EDGES:
        b = scored[:, 1:] & (edge[:, 1:] >= lo) & (edge[:, 1:] < hi)
        print(f"{lo}-{hi} px from the view's edge, h1-{N}: drawn {pct(drawn[:, 1:], b)}")


if __name__ == "__main__":
    main()
