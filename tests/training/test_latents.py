"""The memory-mapped latent cache: what it holds equals the in-memory encode, training finds it by the
tokenizer's hash and reads clips from disk, and a half-written or foreign cache is never used."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from worldloom.cli import main
from worldloom.data.format import Dataset
from worldloom.training.dynamics import ClipSampler
from worldloom.training.init import load_tokenizer
from worldloom.training.latents import (INDEX, cache_dir, dataset_latents, encode_dataset, encode_to_cache, open_cache,
                                        tokenizer_hash)


@pytest.fixture
def data(tmp_path):
    assert main(["collect", "arena", "--episodes", "3", "--steps", "10", "--out", str(tmp_path / "d")]) == 0
    return tmp_path / "d"


def test_the_cache_holds_the_encode_and_clips_come_from_disk(tiny_ckpt, data) -> None:
    vae, _ = load_tokenizer(tiny_ckpt)
    ds = Dataset.open(data)
    lat, act, _ = encode_dataset(vae, ds)
    d = encode_to_cache(vae, data)
    assert d == cache_dir(vae, data) and d.parent == data / "latents" and (d / INDEX).is_file()
    c_lat, c_act, c_axes = open_cache(d, vae)
    assert c_axes is None and len(c_lat) == len(lat) == 3
    for a, b, x, y in zip(lat, c_lat, act, c_act):
        assert isinstance(b, np.memmap) and b.dtype == np.float16  # on disk, not in RAM
        assert torch.allclose(torch.from_numpy(np.asarray(b, np.float32)), a, atol=4e-3, rtol=1e-3)
        assert torch.equal(x, y)
    g1, g2 = (torch.Generator().manual_seed(3) for _ in range(2))
    x1, a1 = ClipSampler(lat, act, 4)(g1, 5, torch.device("cpu"))
    x2, a2 = ClipSampler(c_lat, c_act, 4)(g2, 5, torch.device("cpu"))  # the same clips, read from the memmap
    assert x2.dtype == torch.float32 and torch.allclose(x1, x2, atol=4e-3, rtol=1e-3) and torch.equal(a1, a2)
    assert dataset_latents(vae, ds, data)[3] == f"cache {d}"


def test_another_tokenizer_or_a_killed_encode_is_not_used(tiny_ckpt, data) -> None:
    vae, _ = load_tokenizer(tiny_ckpt)
    d = encode_to_cache(vae, data)
    other, _ = load_tokenizer(tiny_ckpt)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert tokenizer_hash(other) != tokenizer_hash(vae) and cache_dir(other, data) != d
    assert dataset_latents(other, Dataset.open(data), data)[3] == "memory"
    with pytest.raises(ValueError, match="another tokenizer"):
        open_cache(d, other)
    (d / INDEX).unlink()  # as an encode killed before its last write leaves it
    assert dataset_latents(vae, Dataset.open(data), data)[3] == "memory"
    with pytest.raises(FileNotFoundError, match=f"{d}: no {INDEX}"):
        open_cache(d)


def test_encode_then_train_reads_the_cache(tiny_ckpt, data, tmp_path, capsys) -> None:
    assert main(["encode", "--data", str(data), "--tokenizer", str(tiny_ckpt)]) == 0
    assert "MiB" in capsys.readouterr().out
    assert main(["encode", "--data", str(data), "--tokenizer", str(tiny_ckpt)]) == 0
    assert "already encoded" in capsys.readouterr().out
    cfg = json.loads((tiny_ckpt / "config.json").read_text())
    dims = ["--dyn-dim", "32", "--dyn-depth", "1", "--dyn-heads", "2", "--dyn-max-frames", "4", "--recipe-clip-len", "4"]
    assert main(["train", "dynamics", "--data", str(data), "--tokenizer", str(tiny_ckpt), "--out", str(tmp_path / "trained"),
                 "--train-steps", "1", "--train-batch-size", "2", *dims, "--dyn-latent-channels",
                 str(cfg["vae"]["latent_channels"])]) == 0
    assert json.loads((tmp_path / "trained" / "config.json").read_text())["latents"] == f"cache {cache_dir(load_tokenizer(tiny_ckpt)[0], data)}"
    shutil.rmtree(data / "latents")
    assert main(["train", "dynamics", "--data", str(data), "--tokenizer", str(tiny_ckpt), "--out", str(tmp_path / "trained2"),
                 "--train-steps", "1", "--train-batch-size", "2", *dims, "--dyn-latent-channels",
                 str(cfg["vae"]["latent_channels"])]) == 0
    assert json.loads((tmp_path / "trained2" / "config.json").read_text())["latents"] == "memory"


def test_encode_names_what_is_wrong(tiny_ckpt, tmp_path, capsys) -> None:
    assert main(["encode", "--data", str(tmp_path / "none"), "--tokenizer", str(tiny_ckpt)]) == 2
    assert f"--data {tmp_path / 'none'}: directory not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["encode", "--data", str(tmp_path / "empty"), "--tokenizer", str(tiny_ckpt)]) == 2
    assert "meta.json" in capsys.readouterr().err

