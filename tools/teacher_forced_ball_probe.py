"""Does a model move a ball one step from true frames? The drawn ball against its true and its last position.

    .venv/bin/python tools/teacher_forced_ball_probe.py CHECKPOINT DATA [--episodes 40] [--steps S] [--starts 4,12,...]

For each start s and episode, the Simulator is reset on the 4 true frames before s and generates
frame s under the true action: no rollout, so no error of its own compounds. For every ball that
is fully in view in both true frames and moves more than 0.5 px, the drawn ball
(:func:`worldloom.eval.objects.detect`) is compared with the true ball at s. ``copy_err_px`` is the
same distance for the ball left where it was (copy-last); ``ratio`` = model / copy: 1 means the
model draws the ball where it was, 0 where it went. ``drawn_share`` counts the moving balls drawn
at all. (``tools/ball_motion_probe.py`` measures the same inside a rollout.)
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
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the checkpoint's)")
    ap.add_argument("--starts", default="4,12,20,28,36,44,52", help="frames to predict, each from the 4 before it")
    a = ap.parse_args()

    import torch

    import worldloom
    from worldloom.data.format import Dataset
    from worldloom.eval.objects import detect, objects_from_state

    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    model = worldloom.load(a.checkpoint)
    ds = Dataset.open(a.data)
    eps = [ds[i] for i in range(min(a.episodes, len(ds)))]
    C = 4
    em: list[float] = []
    ec: list[float] = []
    drawn = n = 0
    for s in map(int, a.starts.split(",")):
        fr = np.stack([np.array(e.frames[s - C: s + 1]) for e in eps])  # (E, C + 1, H, W, 3)
        ac = np.stack([np.array(e.actions[s - C: s + 1]) for e in eps])
        st = {k: np.stack([np.array(e.state[k][s - 1: s + 1]) for e in eps]) for k in eps[0].state}
        sim = worldloom.Simulator(model, batch=len(eps), **({"steps": a.steps} if a.steps else {}))
        sim.reset(fr[:, :C], ac[:, :C])
        gen = sim.rollout(ac[:, C:])  # (E, 1, H, W, 3)
        truth = fr[:, C - 1:]
        det = detect({"model": np.concatenate([truth[:, :1], gen], 1)}, truth, objects_from_state(st))
        c, tc = det["centroid"]["model"]["ball"][:, 1], det["truth_centroid"]["ball"]  # (E, n, 2), (E, 2, n, 2)
        seen = np.isfinite(tc[:, 0, :, 0]) & np.isfinite(tc[:, 1, :, 0])
        moving = seen & (np.linalg.norm(tc[:, 1] - tc[:, 0], axis=-1) > 0.5)
        ok = moving & np.isfinite(c[..., 0])
        n, drawn = n + int(moving.sum()), drawn + int(ok.sum())
        em += list(np.linalg.norm(c - tc[:, 1], axis=-1)[ok])
        ec += list(np.linalg.norm(tc[:, 0] - tc[:, 1], axis=-1)[ok])
    m, cp = np.array(em), np.array(ec)
    print(json.dumps({"checkpoint": a.checkpoint, "steps": a.steps, "moving_balls": n, "drawn_share": round(drawn / max(n, 1), 3),
                      "model_err_px": round(float(m.mean()), 3) if len(m) else None,
                      "copy_err_px": round(float(cp.mean()), 3) if len(cp) else None,
                      "ratio": round(float(m.mean() / cp.mean()), 3) if len(m) else None}))


if __name__ == "__main__":
    main()
