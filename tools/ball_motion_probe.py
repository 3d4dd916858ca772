"""Does a model move its balls, or carry them with the floor? One-step displacements of drawn balls.

    .venv/bin/python tools/ball_motion_probe.py CHECKPOINT DATA [--episodes 60] [--steps S] [--horizon 8]

For each episode the Simulator is reset on 4 true frames and rolls out ``horizon`` frames under the true
actions. For every ball drawn (:func:`worldloom.eval.objects.detect`) in two consecutive generated frames,
its drawn one-step displacement (view px) is compared with the ball's true displacement and with the
floor's (minus the true camera step). A model that simulates balls is near the first; a model that
scrolls them with the background, near the second. The true displacement's distance to the floor's is
printed for scale.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--episodes", type=int, default=60)
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the checkpoint's)")
    ap.add_argument("--horizon", type=int, default=8)
    a = ap.parse_args()

    import torch

    import worldloom
    from worldloom.data.format import Dataset
    from worldloom.eval.objects import detect, objects_from_state

    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    model = worldloom.load(a.checkpoint)
    ds = Dataset.open(a.data)
    C, N = 4, a.horizon
    eps = [ds[i] for i in range(min(a.episodes, len(ds)))]
    fr = np.stack([np.array(e.frames[: C + N]) for e in eps])  # (E, C + N, H, W, 3)
    ac = np.stack([np.array(e.actions[: C + N]) for e in eps])
    st = {k: np.stack([np.array(e.state[k][C - 1 : C + N]) for e in eps]) for k in eps[0].state}
    sim = worldloom.Simulator(model, batch=len(eps), **({"steps": a.steps} if a.steps else {}))
    sim.reset(fr[:, :C], ac[:, :C])
    gen = sim.rollout(ac[:, C:])  # (E, N, H, W, 3)
    truth = fr[:, C - 1 :]
    det = detect({"model": np.concatenate([truth[:, :1], gen], 1)}, truth, objects_from_state(st))
    c, tc = det["centroid"]["model"]["ball"], det["truth_centroid"]["ball"]  # (E, 1 + N, n, 2)
    dm, dt = c[:, 2:] - c[:, 1:-1], tc[:, 2:] - tc[:, 1:-1]  # generated steps only
    floor = np.broadcast_to(-np.diff(st["camera"][:, 1:], axis=1)[:, :, None, :], dm.shape)
    ok = np.isfinite(dm[..., 0]) & np.isfinite(dt[..., 0])
    dist = lambda x, y: float(np.linalg.norm(x - y, axis=-1)[ok].mean()) if ok.any() else None  # noqa: E731
    print(json.dumps({"checkpoint": a.checkpoint, "pairs": int(ok.sum()),
                      "model_vs_true_px": dist(dm, dt), "model_vs_floor_px": dist(dm, floor),
                      "true_vs_floor_px": dist(dt, floor), "true_vs_still_px": dist(dt, 0 * dt)}))


if __name__ == "__main__":
    main()
