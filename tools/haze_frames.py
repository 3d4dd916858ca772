"""Look at what the haze score counts: held-out rollouts, their haze rates, and a picture of flagged frames.

    .venv/bin/python tools/haze_frames.py CHECKPOINT DATA [--episodes 60] [--horizon 32] [--pick all|new]
        [--old-share 0.3] [--out haze.png]

Rolls the checkpoint out from 4 true frames of each episode (the eval's rollouts, the same seed) and scores
the model, the tokenizer reconstruction and copy-last with :func:`worldloom.eval.objects.haze_objects`. Then
draws up to 10 flagged model frames, chosen at random, one per row: truth | model | the tint map
(:func:`~worldloom.eval.objects.haze_tint`, white = half the step to an object colour; black also where a
true object is within the slack). ``--pick new`` draws only frames that a rule at ``--old-share`` with the
same tests does not flag, to look at what a lower share adds. If the picture and the rate disagree, the
picture is right: a flagged frame should show a smear or a ghost of an object where the truth has none.
"""
from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--episodes", type=int, default=60)
    ap.add_argument("--horizon", type=int, default=32)
    ap.add_argument("--pick", choices=("all", "new"), default="all")
    ap.add_argument("--old-share", type=float, default=0.3)
    ap.add_argument("--out", default="haze.png")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import torch
    from PIL import Image

    import worldloom
    from worldloom.data.format import Dataset
    from worldloom.envs.registry import priors
    from worldloom.eval.haze import SLACK, coloured, dilate, haze_objects, haze_tint
    from worldloom.eval.objects import objects_from_state
    from worldloom.eval.suite import generate, reconstruct

    torch.set_flush_denormal(True)
    model, ds, C, N = worldloom.load(a.checkpoint), Dataset.open(a.data), 4, a.horizon
    eps = [ds[i] for i in range(len(ds)) if ds.lengths[i] >= C + N][: a.episodes]
    if not eps:
        raise SystemExit(f"{a.data}: no episode has the {C + N} frames needed")
    frames = np.stack([np.array(e.frames[: C + N]) for e in eps])  # (E, C + N, H, W, 3)
    acts = np.stack([np.array(e.actions[: C + N]) for e in eps]).astype(np.int64)
    state = {k: np.stack([np.array(e.state[k][C - 1 : C + N]) for e in eps]) for k in eps[0].state}
    objs = objects_from_state(state)
    if not objs:
        raise SystemExit(f"{a.data}: its states report no objects (no <kind>_pos_view keys)")
    colors = np.concatenate([o.color[:, 0] for o in objs], 1)  # (E, k, 3)
    wall = priors(ds.env).get("structure_color")
    wall = None if wall is None else np.asarray(wall, np.float32)
    gen = generate(model, frames[:, :C], acts[:, :C], acts[:, C:], batch=16, overrides={"seed": 0}).frames
    truth = frames[:, C:]
    runs = {"model": gen, "recon": reconstruct(model, frames[:, C - 1 :])[:, 1:],
            "copy_last": np.broadcast_to(frames[:, C - 1 : C], truth.shape)}
    flags = {k: haze_objects(v, truth, colors, structure=wall) for k, v in runs.items()}
    for k, v in flags.items():
        print(f"{k:10s} haze in {v.mean():.1%} of frames (h1-8 {v[:, :8].mean():.1%}), {len(eps)} episodes x {N}")
    pick = flags["model"]
    if a.pick == "new":
        old = haze_objects(gen, truth, colors, structure=wall, share=a.old_share)
        print(f"at share {a.old_share}: {old.mean():.1%}; flagged only at the lower share: {(pick & ~old).sum()} frames")
        pick = pick & ~old
    idx = np.argwhere(pick)
    if not len(idx):
        raise SystemExit("no frame to draw")
    rows = []
    for e, n in idx[np.random.default_rng(a.seed).choice(len(idx), min(10, len(idx)), replace=False)]:
        tint = haze_tint(gen[e, n : n + 1], truth[e, n : n + 1], np.unique(colors[e], axis=0), wall)[0]  # (H, W)
        tint[dilate(coloured(truth[e, n : n + 1], colors[e]), SLACK)[0]] = 0  # black near a true object, as scored
        heat = np.repeat((np.clip(tint / 0.5, 0, 1) * 255)[..., None], 3, -1)
        rows.append(np.concatenate([truth[e, n], gen[e, n], heat.astype(np.uint8)], 1))
        print(f"  row {len(rows)}: episode {e}, h = {n + 1}, peak tint {tint.max():.2f}")
    img = np.concatenate(rows, 0)
    Image.fromarray(img).resize((img.shape[1] * 3, img.shape[0] * 3), Image.NEAREST).save(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
