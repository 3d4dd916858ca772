"""What can a tokenizer draw? Its reconstructions decode(encode(truth)) scored by the eval's object detector.

    .venv/bin/python tools/tokenizer_ceiling.py TOKENIZER DATA [--episodes 30] [--start 20] [--frames 16]

No world model is needed, so a tokenizer can be judged before any dynamics is trained on it: an object
its reconstructions do not draw, no model built on it will. For each of the first ``--episodes``
episodes, frames ``start .. start + frames`` are reconstructed and scored with ``eval/objects.py``
against the dataset's state (frame ``start`` is the context); prints, per object kind, the seen
permanence and motion following over h1-``frames`` for the true frames and the reconstructions, and
the reconstructions' PSNR. The dataset needs a state (the arena, Pong from RAM).
"""
from __future__ import annotations

import argparse
import json
import types

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tokenizer")
    ap.add_argument("data")
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--start", type=int, default=20)
    ap.add_argument("--frames", type=int, default=16)
    a = ap.parse_args()

    import torch

    from worldloom.data.format import Dataset
    from worldloom.eval.objects import score_objects
    from worldloom.eval.suite import reconstruct
    from worldloom.training.init import load_tokenizer

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    vae, _ = load_tokenizer(a.tokenizer)
    ds = Dataset.open(a.data)
    n = a.frames
    eps = [ds[i] for i in range(min(len(ds), a.episodes))]
    if not eps[0].state:
        raise SystemExit(f"{a.data}: its episodes have no state, so there are no objects to score")
    if any(len(e) < a.start + n + 1 for e in eps):
        raise SystemExit(f"{a.data}: episodes need {a.start + n + 1} frames for --start {a.start} --frames {n}")
    truth = np.stack([e.frames[a.start : a.start + n + 1] for e in eps])  # (E, 1 + n, H, W, 3)
    state = {k: np.stack([e.state[k][a.start : a.start + n + 1] for e in eps]) for k in eps[0].state}
    rec = reconstruct(types.SimpleNamespace(vae=vae), truth)
    res = score_objects({"recon": rec[:, 1:], "truth": truth[:, 1:]}, truth, state)
    if res is None:
        raise SystemExit(f"{a.data}: its state names no objects")
    err = (rec.astype(np.float64) - truth) ** 2
    out = {"psnr_recon_db": round(float(10 * np.log10(255.0**2 / err.mean())), 2), "frames": int(np.prod(truth.shape[:2]))}
    for who in ("truth", "recon"):
        out[who] = {k: {"permanence": res["scores"][who][k]["seen"][f"permanence_h1_{n}"],
                        "scored": res["scores"][who][k]["seen"][f"n_h1_{n}"],
                        "follow": (res["follow"].get(k) or {}).get(who, {}).get(f"h1_{n}")} for k in res["kinds"]}
    for k, v in out.items():
        print(f"{k}: {json.dumps(v)}")


if __name__ == "__main__":
    main()
