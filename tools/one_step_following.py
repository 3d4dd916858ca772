"""One-step action following from true context, split by kind of step, on held-out arena episodes.

    .venv/bin/python tools/one_step_following.py checkpoints/arena runs/arena/data-heldout [--precision fp32]

Rollout following mixes two things: whether the model gets a step right from true frames, and how
its own frames feed later mistakes. This measures the first alone: from every 3rd frame 4..55 of
each held-out episode, 4 true context frames, one generated frame under the true action, its view
motion estimated against the decoded last context frame (as the held-out eval does), scored per
kind of step (:data:`worldloom.eval.motion.TRANSITIONS`). A missed moving step that estimates no
motion at all is counted as frozen.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from worldloom.data.format import Dataset
from worldloom.envs.registry import agent_half_px
from worldloom.eval.motion import TRANSITIONS, action_following, central_mask
from worldloom.eval.suite import reconstruct
from worldloom.runtime.simulator import Simulator
from worldloom.runtime.loading import load

CONTEXT = 4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("data")
    p.add_argument("--precision", default=None, help="fp32 | bf16 | int8 (default: the checkpoint's)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(a.threads)
    model = load(a.checkpoint, precision=a.precision)
    ds = Dataset.open(a.data)
    frames, actions, camera = [], [], []
    for i in range(min(a.episodes, len(ds))):
        e = ds[i]
        f, act, cam = np.array(e.frames), np.array(e.actions), np.array(e.state["camera"])
        for s in range(4, len(f) - CONTEXT - 1, 3):  # s >= 1: the step before the context exists
            frames.append(f[s - 1 : s + CONTEXT + 1])
            actions.append(act[s - 1 : s + CONTEXT + 1])
            camera.append(cam[s - 1 : s + CONTEXT + 1])
    F, A, C = np.stack(frames), np.stack(actions).astype(np.int64), np.stack(camera)  # (N, 1 + CONTEXT + 1, ...)
    gen = np.empty((len(F), 1, *F.shape[2:]), np.uint8)
    for i in range(0, len(F), 50):
        j = min(i + 50, len(F))
        sim = Simulator(model, batch=j - i, seed=0)
        sim.reset(F[i:j, 1 : 1 + CONTEXT], A[i:j, 1 : 1 + CONTEXT])
        gen[i:j] = sim.rollout(A[i:j, 1 + CONTEXT :])
    last = reconstruct(model, F[:, CONTEXT : CONTEXT + 1])[:, 0]  # decoded last context frame
    mask = central_mask(gen.shape[2:4], agent_half_px(model.config.get("env")))
    r = action_following(gen, C[:, CONTEXT:], last, prev_motion=C[:, CONTEXT] - C[:, CONTEXT - 1], mask=mask)
    moving = r.moving[:, 0]
    frozen = moving & ~r.hit[:, 0] & (r.est[:, 0] == 0).all(-1)
    print(f"{a.checkpoint} (precision {a.precision or 'checkpoint default'}): "
          f"{len(F)} contexts, {int(moving.sum())} moving steps, {r.rate('hit'):.1%} followed, "
          f"{int(frozen.sum())} of {int((moving & ~r.hit[:, 0]).sum())} misses frozen")
    bt = r.by_transition()
    print("  " + ", ".join(f"{k} {bt[k]['rate']:.1%} ({bt[k]['n']})" for k in TRANSITIONS))


if __name__ == "__main__":
    main()
