"""Does a temporal decoder show the motion its dynamics drew? Following of its frames vs its base decodes.

    .venv/bin/python tools/decoder_following.py runs/arena-recipe/checkpoint runs/arena/data-heldout [--start 16]

(a checkpoint with a temporal decoder: `python -m worldloom.recipes.arena --decoder` writes one there)

A temporal decoder never feeds back into the dynamics, so every generated latent can be drawn two
ways: by the base VAE decoder alone, and through the temporal decoder as the model plays. This rolls
the held-out eval's episodes out once (same context, actions, seed and batches as ``worldloom eval``),
draws each latent both ways, scores both with the eval's action following, and lists the moving
steps over h1-8 that one way follows and the other does not: what the decoder loses (motion the
dynamics drew and the decoder erased) and what it wins.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from worldloom.data.format import Dataset
from worldloom.envs.registry import agent_half_px
from worldloom.eval.motion import action_following, central_mask
from worldloom.eval.suite import reconstruct
from worldloom.models.vae import VAE
from worldloom.runtime.simulator import Simulator
from worldloom.runtime.loading import load

CONTEXT, HORIZON, BATCH = 4, 32, 10


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a world model with a temporal decoder")
    p.add_argument("data")
    p.add_argument("--start", type=int, default=0, help="first context frame in each episode")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--upto", type=int, default=8, help="score horizons 1..upto")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(a.threads)
    model = load(a.checkpoint)
    if model.tdec is None:
        raise SystemExit(f"{a.checkpoint}: has no temporal decoder to compare")
    ds = Dataset.open(a.data)
    L = CONTEXT + HORIZON
    eps = [ds[i] for i in range(len(ds)) if ds.lengths[i] >= a.start + L][: a.episodes]
    fr = np.stack([np.array(e.frames[a.start : a.start + L]) for e in eps])  # (E, L, H, W, 3)
    ac = np.stack([np.array(e.actions[a.start : a.start + L]) for e in eps]).astype(np.int64)  # (E, L)
    cam = np.stack([np.array(e.state["camera"][a.start : a.start + L]) for e in eps])[:, CONTEXT - 1 :]  # (E, 1 + N, 2)
    td, base = np.empty((2, len(eps), HORIZON, *fr.shape[2:]), np.uint8)
    with torch.inference_mode():
        for i in range(0, len(eps), BATCH):
            j = min(i + BATCH, len(eps))
            sim = Simulator(model, batch=j - i, seed=0)
            sim.reset(fr[i:j, :CONTEXT], ac[i:j, :CONTEXT])
            for k in range(HORIZON):
                z = sim.step_latent(ac[i:j, CONTEXT + k])
                base[i:j, k] = VAE.to_uint8(model.vae.decode_float(z)).cpu().numpy()
                td[i:j, k] = sim.render(z)
    # Pairs of like sharpness, as the eval: the decoder's frames after the true last context frame,
    # the base decodes after its reconstruction.
    mask = central_mask(fr.shape[2:4], agent_half_px(model.config.get("env")))
    runs = {"temporal decoder": action_following(td, cam, fr[:, CONTEXT - 1], mask=mask),
            "base decodes": action_following(base, cam, reconstruct(model, fr[:, CONTEXT - 1 : CONTEXT])[:, 0], mask=mask)}
    moving = runs["base decodes"].moving[:, : a.upto]
    hit = {k: r.hit[:, : a.upto] & moving for k, r in runs.items()}
    n = int(moving.sum())
    print(f"{len(eps)} episodes from frame {a.start}, moving steps over h1-{a.upto}: {n}")
    for k, h in hit.items():
        print(f"  {k:17s} follows {int(h.sum())} ({h.sum() / n:.1%})")
    t, b = hit["temporal decoder"], hit["base decodes"]
    for name, sel in (("lost by the decoder", b & ~t), ("won by the decoder", t & ~b)):
        rows = [f"episode {e} h{s + 1}: true {runs['base decodes'].true[e, s].tolist()}, decoder "
                f"{runs['temporal decoder'].est[e, s].tolist()}, base {runs['base decodes'].est[e, s].tolist()}"
                for e, s in zip(*np.nonzero(sel))]
        print(f"{name}: {len(rows)}" + "".join(f"\n  {r}" for r in rows))
    print(f"missed both ways: {int((moving & ~t & ~b).sum())}")


if __name__ == "__main__":
    main()
