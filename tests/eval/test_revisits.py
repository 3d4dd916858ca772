"""Revisits found in a dataset: the pair finder, and the suite on a tiny model with each memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldloom.actions import ActionSpec
from worldloom.data.writer import DatasetWriter
from worldloom.eval.revisits import find_revisits, run_revisits
from worldloom.models.dit import CausalDiT, DynamicsConfig
from worldloom.models.vae import VAE, VAEConfig
from worldloom.runtime.simulator import SimConfig, WorldModel

SPEC = ActionSpec(names=("noop", "turn"), keys=((), ("t",)))


def _views(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct 64x64 views (blocky random colours, far apart in PSNR)."""
    rng = np.random.default_rng(seed)
    return np.repeat(np.repeat(rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8), 16, 1), 16, 2)


def test_find_revisits_takes_the_last_sighting_and_the_first_return():
    v = _views(50)
    seq = [0, 1, 2, 3, *range(4, 40), 3, 41]  # view 3 at t=3, again at t=40: 37 frames away
    frames = v[seq]
    assert find_revisits(frames, gap=32, context=4) == (3, 40)
    assert find_revisits(frames, gap=38, context=4) is None  # 37 frames away is not 38
    assert find_revisits(frames, gap=32, context=5) is None  # no full 5-frame context ends at t=3
    seen_between = v[[0, 1, 2, 3, *range(4, 20), 3, *range(21, 40), 3]]  # view 3 also at t=20: last sighting
    assert find_revisits(seen_between, gap=32, context=4) is None
    assert find_revisits(seen_between, gap=16, context=4) == (3, 20)
    noisy = frames.copy()
    noisy[40] = np.clip(noisy[40].astype(int) + 2, 0, 255)  # PSNR ~42 dB: still the same view
    assert find_revisits(noisy, gap=32, context=4) == (3, 40)
    assert find_revisits(noisy, gap=32, context=4, match_db=60) is None


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("revisits") / "ds"
    v = _views(60, seed=1)
    with DatasetWriter(out, env="test", env_kwargs=None, frame_shape=(64, 64, 3), fps=10, action_spec=SPEC,
                       policy=None, seed=0) as w:
        for e in range(3):  # a 36-frame loop walked twice: every view returns 36 frames later
            seq = [(e * 7 + t % 36) % 60 for t in range(80)]
            w.add_episode(v[seq], np.r_[0, np.ones(79, np.int64)], seed=e)
        w.add_episode(v[np.arange(50) % 60], np.r_[0, np.ones(49, np.int64)], seed=3)  # never returns
    return out


@pytest.fixture(scope="module")
def model() -> WorldModel:
    torch.manual_seed(0)
    dit = CausalDiT(DynamicsConfig(dim=32, depth=1, heads=2, max_frames=8, n_actions=2)).eval()
    return WorldModel(vae=VAE(VAEConfig(width=16, blocks=1)).eval(), dit=dit, config={}, action_spec=SPEC,
                      sim=SimConfig(steps=1, window=8))


def test_suite_scores_every_memory_on_the_same_probes(model: WorldModel, data):
    res = run_revisits(model, data=data, gaps=(32, 40), memories=("window", "similar"), batch=2)
    r = res.metrics["per_gap"]["32"]
    assert r["probes"] == 3 and r["frames_away_mean"] == 36  # the loop's three episodes; the fourth never returns
    assert set(r["memories"]) == {"window", "similar"} and res.metrics["memories"] == ["window", "similar"]
    ref = r["references"]
    assert ref["perfect memory"]["psnr"] > 60 and ref["copy last"]["psnr"] < 15  # the same view vs another one
    assert all(len(m["psnr_per_probe"]) == 3 for m in r["memories"].values())
    assert "40" not in res.metrics["per_gap"] and any("gap 40" in n for n in res.notes)  # reported, not hidden
    assert res.metrics["psnr_gap32_window"] == r["memories"]["window"]["psnr"]
    assert len(res.tables[0].rows) == 2


def test_suite_errors_name_what_is_wrong(model: WorldModel, data):
    with pytest.raises(ValueError, match="needs a dataset"):
        run_revisits(model)
    with pytest.raises(ValueError, match="gaps must be distinct integers >= 2"):
        run_revisits(model, data=data, gaps=(1,))
    with pytest.raises(ValueError, match="no probe in .* for any gap"):
        run_revisits(model, data=data, gaps=(70,))
