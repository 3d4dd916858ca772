"""Look at a revisit: the persistence suite's round trips, drawn as the departure, the true revisit, the
model's revisit and the model at the turning point, one probe per row.

    .venv/bin/python tools/revisit_frames.py CHECKPOINT [--ks 64,256] [--probes 3] [--memory M] [--out PNG]

The probes are the suite's first ones (same seeds, ``worldloom.eval.persistence``): k frames out, k back,
then still. The model plays with its own default memory unless ``--memory`` names another. Static PSNR says
how much of the place came back; this picture says what came back (floor, landmarks, balls). For a model
with a memory copy gate (``DynamicsConfig.mem_copy``) it also prints, per k, how far the gate opened on the
last revisit frame's latent cells under a true landmark and on the other cells (the agent's square left out).
"""
from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--ks", default="64,256", help="frames out (and as many back), comma-separated")
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--memory", default=None, help="context policy (default: the checkpoint's)")
    ap.add_argument("--out", default="runs/revisit.png")
    a = ap.parse_args()

    from pathlib import Path

    import torch
    from PIL import Image

    import worldloom
    from worldloom.eval.causality import make_truth_env
    from worldloom.eval.persistence import gather_probes
    from worldloom.runtime.simulator import Simulator

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    model = worldloom.load(a.checkpoint)
    env = make_truth_env(model, "persistence")
    over = {} if a.memory is None else {"memory": a.memory}
    rows = []
    gate = model.dit.mem_copy is not None
    yy, xx = (np.mgrid[0:16, 0:16] * 4 + 2.0) * (model.frame_size / 64)  # latent cell centres, px (16 x 16 cells)
    agent = (abs(xx - model.frame_size / 2) < 8) & (abs(yy - model.frame_size / 2) < 8)
    for k in (int(x) for x in a.ks.split(",")):
        got, _ = gather_probes(model, env, k, a.probes)
        on_marks, on_rest = [], []
        for p in got:
            sim = Simulator(model, **over)
            sim.reset(p["context"], np.zeros(4, np.int64))
            frames = [sim.step(int(act)) for act in p["actions"]]
            rows.append(np.concatenate([p["context"][-1], p["truth"][-1], frames[-1], frames[k - 1]], 1))
            print(f"k={k} seed {p['seed']}: {sim.memory.state()}")
            if gate:
                g = model.dit.mem_copy.last_gate[0, -1, 0].float().cpu().numpy()  # (h, w): the last frame's gate
                marks = np.zeros(g.shape, bool)
                for (x, y), r in zip(p["landmarks"]["landmark_pos_view"][-1], p["landmarks"]["landmark_radius"][-1]):
                    marks |= np.hypot(xx - x, yy - y) <= float(np.ravel(r)[0]) + 2
                if (marks & ~agent).any():
                    on_marks.append(float(g[marks & ~agent].mean()))
                on_rest.append(float(g[~marks & ~agent].mean()))
        if gate:
            print(f"k={k}: copy gate on the last revisit frame, landmark cells {np.mean(on_marks) if on_marks else float('nan'):.3f} "
                  f"({len(on_marks)} probes with one in view), other cells {np.mean(on_rest):.3f}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(a.out)
    print(f"wrote {a.out}: columns departure | true revisit | model revisit | model at the turn; rows k x probe")


if __name__ == "__main__":
    main()
