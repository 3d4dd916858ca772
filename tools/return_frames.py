"""Look at the revisits suite's returns: per probe, the departure, the true return and each model's return.

    .venv/bin/python tools/return_frames.py DATA CKPT:MEMORY [CKPT:MEMORY ...] [--gap 32] [--probes 6] [--out PNG]

The probes are the suite's (``worldloom.eval.revisits``): in each of the first episodes of DATA, the first
frame that shows again a view last seen at least ``--gap`` frames before. Each row: the true departure frame
t1 (the last context frame), the true return t2, then the t2 each CKPT makes with MEMORY (``window``,
``similar_aligned``, ...), rolled out from the same 4 true frames with the true actions, PSNR against t2 above
it. PSNR says how much came back; the picture says what (walls, doors, the agent's marker).
"""
from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("runs", nargs="+", help="CHECKPOINT:MEMORY, one column each")
    ap.add_argument("--gap", type=int, default=32)
    ap.add_argument("--episodes", type=int, default=40, help="episodes searched for probes")
    ap.add_argument("--probes", type=int, default=6, help="rows drawn (the first probes found)")
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--out", default="runs/returns.png")
    a = ap.parse_args()

    import torch
    from PIL import Image, ImageDraw

    import worldloom
    from worldloom.data.format import Dataset
    from worldloom.eval.metrics import psnr
    from worldloom.eval.revisits import find_revisits, generate_returns

    torch.set_flush_denormal(True)
    ds = Dataset.open(a.data)
    probes = []
    for i in range(min(a.episodes, len(ds))):
        hit = find_revisits(np.asarray(ds[i].frames), a.gap)
        if hit is not None:
            probes.append((i, *hit))
        if len(probes) == a.probes:
            break
    if not probes:
        raise SystemExit(f"{a.data}: no return after {a.gap} frames away in its first {a.episodes} episodes")
    truth = np.stack([np.asarray(ds[i].frames[t2]) for i, _, t2 in probes])
    cols = [np.stack([np.asarray(ds[i].frames[t1]) for i, t1, _ in probes]), truth]
    heads = ["departure t1", "true return t2"]
    for spec in a.runs:
        ckpt, _, mem = spec.rpartition(":")
        if not ckpt:
            raise SystemExit(f"{spec!r}: expected CHECKPOINT:MEMORY")
        gen, name = generate_returns(worldloom.load(ckpt), ds, probes, 4, {"seed": 0, "memory": mem}, 10, False)
        cols.append(gen)
        heads.append(f"{ckpt.rstrip('/').split('/')[-1]} {name}")
    S, H = a.scale, truth.shape[1]
    cell, top = H * S + 4, 14
    img = Image.new("RGB", (len(cols) * cell, top + len(probes) * (cell + 12)), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for c, head in enumerate(heads):
        draw.text((c * cell + 2, 1), head[: cell // 6], fill=(0, 0, 0))
    for r, (i, t1, t2) in enumerate(probes):
        y = top + r * (cell + 12)
        for c, col in enumerate(cols):
            label = f"ep {i}: {t2 - t1} away" if c == 0 else f"{float(psnr(col[r], truth[r])):.1f} dB" if c > 1 else f"t={t2}"
            draw.text((c * cell + 2, y), label, fill=(0, 0, 0))
            img.paste(Image.fromarray(np.kron(col[r], np.ones((S, S, 1), np.uint8))), (c * cell, y + 12))
    img.save(a.out)
    print(f"{len(probes)} probes -> {a.out}")


if __name__ == "__main__":
    main()
