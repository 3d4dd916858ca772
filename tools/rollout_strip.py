"""Truth above model from any frame of a dataset's episodes: a PNG to look at, for any world.

    .venv/bin/python tools/rollout_strip.py CHECKPOINT DATA --start 150 --episodes 0,3,7 --out runs/look/pong.png

``../shared/tools/look.py`` draws the arena from its reset; a world whose interesting part comes later
(Pong's ball after the first points) needs a later start. Each episode gives two rows: its true frames
``start + h - 1`` for h = 1, 2, 4, 8, 16, 32, then the model's, reset on the 4 true frames before
``start`` and rolled out with the true actions (the eval's own loop, ``eval.suite.generate``); 4x nearest
upscale.
"""
from __future__ import annotations

import argparse

import numpy as np

HORIZONS = (1, 2, 4, 8, 16, 32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--start", type=int, default=4)
    ap.add_argument("--episodes", default="0,1,2")
    ap.add_argument("--out", default="runs/look/strip.png")
    a = ap.parse_args()

    from pathlib import Path

    from PIL import Image

    from worldloom.data.format import Dataset
    from worldloom.eval.suite import generate
    from worldloom.runtime.loading import load

    model, ds, s, n = load(a.checkpoint), Dataset.open(a.data), a.start, max(HORIZONS)
    if s < 4:
        raise SystemExit(f"--start {s}: needs 4 true frames before it")
    rows = []
    for e in (int(x) for x in a.episodes.split(",")):
        ep = ds[e]
        if len(ep) < s + n:
            raise SystemExit(f"{a.data}: episode {e} has {len(ep)} frames; --start {s} needs {s + n}")
        ax = None if ep.axes is None else np.asarray(ep.axes, np.float32)  # a continuous world's axis values too
        gen = generate(model, ep.frames[s - 4 : s][None], ep.actions[s - 4 : s][None], ep.actions[s : s + n][None],
                       context_axes=None if ax is None else ax[None, s - 4 : s],
                       axes=None if ax is None else ax[None, s : s + n]).frames[0]
        rows.append(np.concatenate([ep.frames[s + h - 1] for h in HORIZONS], 1))  # (H, 6W, 3)
        rows.append(np.concatenate([gen[h - 1] for h in HORIZONS], 1))
    img = np.concatenate(rows, 0)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).resize((img.shape[1] * 4, img.shape[0] * 4), Image.NEAREST).save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
