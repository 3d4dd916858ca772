"""Resident memory of a dynamics run's latents: encoded into RAM vs memory-mapped from the cache.

Each case runs in a fresh process and reports VmRSS split into anonymous memory (what the process
owns) and file-backed pages (the page cache's share, which the kernel can drop):
- ``memory``: the dataset encoded into RAM as training without a cache does (``encode_dataset``);
- ``cache``: the dataset's ``worldloom encode`` cache opened and 500 batches of 16 clips drawn from it;
- ``synthetic N``: a cache of N random frames at the arena's latent shape (8x16x16, float16), written
  straight to disk, then opened and drawn from as above.

    python tools/latent_rss.py runs/arena/data-train checkpoints/arena [--synthetic 1000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def status() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile"):
            out[k] = round(int(v.split()[0]) / 1024, 1)  # MiB
    return out


def write(kind: str, data: str, tok: str, n: int, d: Path) -> None:
    """Build the cache a case opens: ``worldloom encode``'s, or n random frames in episodes of 300."""
    import numpy as np

    if kind == "cache":
        from worldloom.training.init import load_tokenizer
        from worldloom.training.latents import encode_to_cache

        encode_to_cache(load_tokenizer(tok)[0], data, out=d)
        return
    d.mkdir(parents=True)
    lat = np.lib.format.open_memmap(d / "latents.npy", mode="w+", dtype=np.float16, shape=(n, 8, 16, 16))
    rng = np.random.default_rng(0)
    for i in range(0, n, 50_000):
        lat[i : i + 50_000] = rng.standard_normal((min(50_000, n - i), 8, 16, 16), dtype=np.float32)
    lat.flush()
    np.save(d / "actions.npy", rng.integers(0, 5, n))
    eps = [[s, min(300, n - s)] for s in range(0, n, 300)]
    (d / "index.json").write_text(json.dumps({"n_axes": 0, "episodes": eps}))


def case(kind: str, data: str, tok: str, d: Path) -> dict:
    import os

    import torch

    torch.set_num_threads(1)
    before = status()
    if kind == "memory":
        from worldloom.data.format import Dataset
        from worldloom.training.init import load_tokenizer
        from worldloom.training.latents import encode_dataset

        lat, act, _ = encode_dataset(load_tokenizer(tok)[0], Dataset.open(data))
    else:
        from worldloom.training.dynamics import ClipSampler
        from worldloom.training.latents import open_cache

        fd = os.open(d / "latents.npy", os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # start cold: the writer's pages out of the page cache
        os.close(fd)
        lat, act, _ = open_cache(d)
        cs = ClipSampler(lat, act, 8)
        g = torch.Generator().manual_seed(0)
        for _ in range(500):
            cs(g, 16, torch.device("cpu"))
    after = status()
    return {"case": kind, "frames": sum(len(z) for z in lat), "MiB_before": before, "MiB_after": after,
            "anon_growth_MiB": round(after["RssAnon"] - before["RssAnon"], 1), "file_pages_MiB": after["RssFile"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("tokenizer")
    ap.add_argument("--synthetic", type=int, default=0, help="also a synthetic cache of this many frames")
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)  # the child process's one case
    ap.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        if a.case.startswith("write-"):
            write(a.case[6:], a.data, a.tokenizer, a.synthetic, Path(a.dir))
        else:
            print(json.dumps(case(a.case, a.data, a.tokenizer, Path(a.dir))))
        return
    tmp = Path(tempfile.mkdtemp())

    def child(kind: str, d: Path) -> None:
        p = subprocess.run([sys.executable, __file__, a.data, a.tokenizer, "--synthetic", str(a.synthetic), "--case", kind,
                            "--dir", str(d)], capture_output=True, text=True)
        if p.returncode or p.stdout.strip():
            print(p.stdout.strip() if p.returncode == 0 else p.stderr[-2000:], flush=True)

    child("memory", tmp)
    for kind in ("cache",) + (("synthetic",) if a.synthetic else ()):
        child(f"write-{kind}", tmp / kind)
        child(kind, tmp / kind)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
