"""A dataset's latents: encoded into memory per run, or once into a memory-mapped cache on disk.

``worldloom encode --data D --tokenizer T`` writes ``D/latents/<key>/``, where ``key`` hashes the
tokenizer's weights (the VAE as loaded, whichever checkpoint holds it) and the dataset's ``meta.json``:
- ``latents.npy``: every frame's standardised latent, (N, C, h, w) float16, episodes end to end;
- ``actions.npy`` (N,) int64 and, where the ActionSpec has continuous axes, ``axes.npy`` (N, A) float32;
- ``index.json``: the key, each episode's (start, length), the shapes; written last, so a cache
  whose encode was killed has none and is not used.

Training opens a cache it finds with ``np.load(mmap_mode="r")``: a clip is read from disk (the page
cache) when it is drawn, so resident memory does not grow with the dataset; without a cache it encodes
into RAM as it always did (float32). float16 halves the disk and the page cache; a standardised
latent's rounding (|z| < 8: under 4e-3) is far below the model's error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.format import Dataset
from ..models.vae import VAE

INDEX = "index.json"
Episodes = list[Any]  # per episode: a (T, ...) tensor (in memory) or a read-only memmap slice (cached)


@torch.no_grad()
def encode_dataset(vae: VAE, ds: Dataset, batch: int = 256) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor] | None]:
    """Latents (T, C, h, w), actions (T,) and (if the ActionSpec has axes) normalised axis values (T, A) of every episode."""
    lat, act, axes = [], [], []
    spec = ds.action_spec
    for ep in ds:
        frames = torch.from_numpy(np.array(ep.frames))
        lat.append(torch.cat([vae.encode(frames[i : i + batch]) for i in range(0, len(frames), batch)]).float())
        act.append(torch.from_numpy(np.array(ep.actions)).long())
        if spec.n_axes:
            axes.append(torch.from_numpy(spec.normalize(np.array(ep.axes))).float())
    return lat, act, (axes if spec.n_axes else None)


def tokenizer_hash(vae: VAE) -> str:
    """sha256 of the VAE's weights and latent statistics as loaded (names, dtypes and bytes, in order)."""
    h = hashlib.sha256()
    for name, t in sorted(vae.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(vae: VAE, data: str | Path) -> str:
    meta = (Path(data) / "meta.json").read_bytes()
    return hashlib.sha256(tokenizer_hash(vae).encode() + meta).hexdigest()[:16]


def cache_dir(vae: VAE, data: str | Path) -> Path:
    return Path(data) / "latents" / cache_key(vae, data)


@torch.no_grad()
def encode_to_cache(vae: VAE, data: str | Path, batch: int = 256, out: str | Path | None = None) -> Path:
    """Encode every frame of dataset ``data`` into a memory-mapped cache (default ``cache_dir``); returns it.

    Written into a temporary directory that is renamed into place, so a killed encode leaves nothing used."""
    ds = Dataset.open(data)
    dest = Path(out) if out is not None else cache_dir(vae, data)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    C, h, w = vae.cfg.latent_channels, vae.cfg.latent_size, vae.cfg.latent_size
    N, spec = ds.n_frames, ds.action_spec
    lat = np.lib.format.open_memmap(tmp / "latents.npy", mode="w+", dtype=np.float16, shape=(N, C, h, w))
    act = np.lib.format.open_memmap(tmp / "actions.npy", mode="w+", dtype=np.int64, shape=(N,))
    axes = np.lib.format.open_memmap(tmp / "axes.npy", mode="w+", dtype=np.float32, shape=(N, spec.n_axes)) \
        if spec.n_axes else None
    episodes, at = [], 0
    for ep in ds:
        frames = torch.from_numpy(np.array(ep.frames))
        T = len(frames)
        for i in range(0, T, batch):
            lat[at + i : at + min(T, i + batch)] = vae.encode(frames[i : i + batch]).float().numpy()
        act[at : at + T] = np.asarray(ep.actions)
        if axes is not None:
            axes[at : at + T] = spec.normalize(np.array(ep.axes))
        episodes.append([at, T])
        at += T
    for a in (lat, act, axes):
        if a is not None:
            a.flush()
    index = {"key": dest.name, "tokenizer_sha256": tokenizer_hash(vae), "data": str(data), "n_frames": N,
             "latent_shape": [C, h, w], "dtype": "float16", "n_axes": spec.n_axes, "episodes": episodes}
    (tmp / INDEX).write_text(json.dumps(index))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def open_cache(path: str | Path, vae: VAE | None = None) -> tuple[Episodes, list[torch.Tensor], list[torch.Tensor] | None]:
    """(latents, actions, axes) per episode from a cache: latents as read-only memmap slices, the small
    action arrays in memory. With ``vae``, refuses a cache another tokenizer wrote."""
    path = Path(path)
    if not (path / INDEX).is_file():
        raise FileNotFoundError(f"{path}: no {INDEX}: not a latent cache, or its encode did not finish; run worldloom encode")
    index = json.loads((path / INDEX).read_text())
    if vae is not None and index.get("tokenizer_sha256") != tokenizer_hash(vae):
        raise ValueError(f"{path}: encoded by another tokenizer (sha256 {str(index.get('tokenizer_sha256'))[:12]}...); "
                         "run worldloom encode with this one")
    lat = np.load(path / "latents.npy", mmap_mode="r")
    act = torch.from_numpy(np.load(path / "actions.npy"))
    axes = torch.from_numpy(np.load(path / "axes.npy")) if index["n_axes"] else None
    spans = [(int(s), int(n)) for s, n in index["episodes"]]
    if sum(n for _, n in spans) != len(lat):
        raise ValueError(f"{path}: {INDEX} counts {sum(n for _, n in spans)} frames, latents.npy holds {len(lat)}")
    return ([lat[s : s + n] for s, n in spans], [act[s : s + n] for s, n in spans],
            None if axes is None else [axes[s : s + n] for s, n in spans])


def dataset_latents(vae: VAE, ds: Dataset, data: str | Path) -> tuple[Episodes, list[torch.Tensor], list[torch.Tensor] | None, str]:
    """The dataset's latents from its cache for this tokenizer if it has one, else encoded into memory;
    the last item says which ("cache DIR" or "memory")."""
    d = cache_dir(vae, data)
    if (d / INDEX).is_file():
        return (*open_cache(d, vae), f"cache {d}")
    return (*encode_dataset(vae, ds), "memory")


def clip(episode: Any, start: int, length: int) -> torch.Tensor:
    """Frames [start, start + length) of one episode's latents as a float32 tensor (copied from a memmap)."""
    part = episode[start : start + length]
    return part if isinstance(part, torch.Tensor) else torch.from_numpy(np.asarray(part, dtype=np.float32))
