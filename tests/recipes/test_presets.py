"""GPU presets: their configs print without data, their sizes are the documented ones, gpu-small trains on CPU."""

import json
from pathlib import Path

import pytest

from worldloom.cli import main
from worldloom.recipes import presets


@pytest.mark.parametrize("name", presets.NAMES)
def test_every_preset_prints_its_config_without_data(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "dynamics", "--preset", name, "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    pr = presets.get(name)
    assert cfg["dynamics"]["dim"] == pr.dynamics.dim and cfg["dynamics"]["latent_size"] == pr.vae.latent_size
    assert cfg["train"]["checkpointing"] == pr.train.checkpointing
    assert main(["train", "tokenizer", "--preset", name, "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["vae"]["frame_size"] == pr.vae.frame_size


def test_gpu_presets_are_the_sizes_they_state() -> None:
    import torch

    from worldloom.models.dit import CausalDiT

    for name, lo, hi, px, tokens in (("gpu-small", 40e6, 60e6, 128, 64), ("gpu", 280e6, 320e6, 256, 256)):
        pr = presets.get(name)
        with torch.device("meta"):
            n = sum(p.numel() for p in CausalDiT(pr.dynamics).parameters())
        assert lo < n < hi and pr.vae.frame_size == px and pr.dynamics.n_tok == tokens
        assert pr.vae.downsample == 8 and pr.train.checkpointing and pr.train.compile and pr.train.fused
    with pytest.raises(KeyError, match="known: cpu, tiny, gpu-small, gpu"):
        presets.get("huge")


def test_missing_paths_are_a_usage_error_unless_printing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "dynamics", "--preset", "gpu"]) == 2
    assert "--data, --tokenizer, --out" in capsys.readouterr().err


@pytest.mark.slow  # 9.2 min on 2 cores (7 min even at 2 steps: the 128 px tokenizer's encoding and scoring dominate)
def test_gpu_small_trains_on_cpu(tmp_path: Path, steps: int = 20, clip: int = 16) -> None:
    """The gpu-small preset (128 px, x8 tokenizer, 64 tokens a frame, ~49 M DiT, activation checkpointing) runs its
    tokenizer and dynamics training on this CPU for 20 steps with a tiny batch: compile and fused AdamW stay off
    without CUDA."""
    d = str(tmp_path)
    assert main(["collect", "arena", "--episodes", "2", "--steps", str(clip + 2), "--frame-size", "128", "--out", f"{d}/data"]) == 0
    assert main(["train", "tokenizer", "--preset", "gpu-small", "--data", f"{d}/data", "--out", f"{d}/tok",
                 "--train-steps", str(steps), "--train-batch-size", "2", "--train-warmup", "1", "--train-threads", "2"]) == 0
    assert main(["train", "dynamics", "--preset", "gpu-small", "--data", f"{d}/data", "--tokenizer", f"{d}/tok", "--out", f"{d}/wm",
                 "--train-steps", str(steps), "--train-batch-size", "1", "--train-warmup", "1", "--recipe-clip-len", str(clip),
                 "--train-threads", "2"]) == 0
    cfg = json.loads((tmp_path / "wm" / "config.json").read_text())
    assert (cfg["dynamics"]["latent_size"], cfg["dynamics"]["patch"], cfg["vae"]["frame_size"]) == (16, 2, 128)  # 64 tokens
    log = [json.loads(line) for line in (tmp_path / "wm" / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == steps and all(map(lambda r: r["loss"] == r["loss"], log))  # finite, not NaN
