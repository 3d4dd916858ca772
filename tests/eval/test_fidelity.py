"""Fidelity suite on the tiny untrained world model: shape of the result, baselines, wiring, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from worldloom.envs.policies import ScriptedPolicy
from worldloom.eval.fidelity import SEED, _train_overlap, run_fidelity, true_episodes
from worldloom.eval.lpips import weights_path
from worldloom.eval.metrics import psnr
from worldloom.runtime.simulator import Simulator, WorldModel

torch.set_num_threads(1)
HS, CTX, E = (1, 3, 6), 2, 2
METHODS = {"model", "copy_last", "recon"}


def test_result_is_well_formed(tiny_world: WorldModel):
    res = run_fidelity(tiny_world, episodes=E, horizons=HS, context=CTX)
    m = res.metrics
    assert res.name == "fidelity" and res.seconds > 0 and m["ms_per_frame"] > 0
    has_lpips = weights_path("alex").exists()
    names = ["psnr", "ssim"] + (["lpips"] if has_lpips else [])
    for name in names:
        assert set(m[f"{name}_at"]) == METHODS and set(m[f"{name}_mean"]) == METHODS
        for k in METHODS:
            assert set(m[f"{name}_at"][k]) == {"1", "3", "6"}
            assert np.isfinite(list(m[f"{name}_at"][k].values())).all() and np.isfinite(m[f"{name}_mean"][k])
    assert (m["lpips_net"] == "alex") == has_lpips and ("lpips_at" in m) == has_lpips
    if not has_lpips:
        assert any("LPIPS skipped" in n for n in res.notes)
    assert (m["n_episodes"], m["context"], m["horizons"], m["seed"], m["sim"]["steps"]) == (E, CTX, list(HS), SEED, 2)
    assert [t.columns for t in res.tables[: len(names)]] == [["method", "h=1", "h=3", "h=6", "mean 1-6"]] * len(names)
    assert all(len(t.rows) == 3 for t in res.tables[: len(names)])
    # The arena reports its objects and states its wall colour: their tables and headline numbers follow.
    assert res.tables[-2].columns[:2] == ["kind", "frames"] and len(res.tables) == len(names) + 2
    obj = m["objects"]
    assert 0.0 <= obj["ball_permanence_h1_6"] <= 1.0 and 0.0 <= obj["false_objects"] <= 1.0
    assert res.tables[-1].title.startswith("Walls") and [r[0] for r in res.tables[-1].rows] == ["model", "copy_last", "recon"]
    assert set(m["structure"]) == {"walls_iou_h1_6"} and 0.0 <= m["structure"]["walls_iou_h1_6"] <= 1.0
    assert len(res.plots) == len(names)
    for p in res.plots:
        assert p.logx and p.x == [1, 2, 3, 4, 5, 6] and all(len(s) == 6 for s in p.series.values())
    assert set(res.videos) == {"episode0", "episode1"}
    assert all(v.shape == (CTX + 6, 64, 3 * 64 + 4, 3) and v.dtype == np.uint8 for v in res.videos.values())
    json.dumps(res.to_json(), allow_nan=False)


def test_model_frames_are_the_simulators_under_the_true_actions(tiny_world: WorldModel):
    res = run_fidelity(tiny_world, episodes=E, horizons=(1, 4), context=CTX, lpips=False)
    frames, actions = true_episodes(tiny_world, E, CTX + 4, SEED)
    sim = Simulator(tiny_world, batch=E, seed=SEED)
    sim.reset(frames[:, :CTX], actions[:, :CTX])
    expect = sim.rollout(actions[:, CTX:])  # (E, 4, H, W, 3): the actions that followed the context
    for e in range(E):
        video = res.videos[f"episode{e}"]  # (CTX + 4, H, 3W + 4, 3): model | truth | difference
        assert np.array_equal(video[CTX:, :, :64], expect[e])
        assert np.array_equal(video[:, :, 66:130], frames[e])
    sim.reset(frames[:, :CTX], actions[:, :CTX])  # same noise, other actions: the check above has teeth
    assert not np.array_equal(sim.rollout((actions[:, CTX:] + 1) % tiny_world.action_spec.n), expect)
    # Copy-last at horizon 1 is frames[context - 1] against frames[context], recomputed here.
    want = psnr(frames[:, CTX - 1], frames[:, CTX]).mean()
    assert res.metrics["psnr_at"]["copy_last"]["1"] == pytest.approx(want, abs=1e-9)
    assert any("LPIPS off" in n for n in res.notes) and "lpips_at" not in res.metrics


def test_still_scene_copy_last_is_exact(tiny_world: WorldModel):
    still = dataclasses.replace(tiny_world, config={**tiny_world.config, "env_kwargs": {"n_balls": 0}})
    res = run_fidelity(still, episodes=E, horizons=(1, 5), context=CTX, policy=ScriptedPolicy([0]))
    m = res.metrics
    for h in ("1", "5"):
        assert m["psnr_at"]["copy_last"][h] > 78.0  # exact copy: the MSE floor, 78.1 dB
        assert m["ssim_at"]["copy_last"][h] == pytest.approx(1.0)
        assert m["psnr_at"]["model"][h] < 40.0  # the untrained model does not reproduce it
        if "lpips_at" in m:
            assert m["lpips_at"]["copy_last"][h] < 1e-6 < m["lpips_at"]["model"][h]


def test_episodes_are_fixed_and_seeded(tiny_world: WorldModel):
    a_frames, a_actions = true_episodes(tiny_world, 2, 12, SEED)
    b_frames, b_actions = true_episodes(tiny_world, 2, 12, SEED)
    c_frames, _ = true_episodes(tiny_world, 2, 12, SEED + 2)
    assert np.array_equal(a_frames, b_frames) and np.array_equal(a_actions, b_actions)
    assert not np.array_equal(a_frames, c_frames) and not np.array_equal(a_frames[0], a_frames[1])
    assert a_actions[:, 0].tolist() == [0, 0] and a_frames.shape == (2, 12, 64, 64, 3)
    trained = dataclasses.replace(tiny_world, config={**tiny_world.config,
                                                      "data": {"n_episodes": 120, "policy": {"name": "momentum", "seed": 0}}})
    assert _train_overlap(trained, SEED, 4) is None
    assert "overlap the training seeds 0..119" in (_train_overlap(trained, 100, 4) or "")


def test_bad_arguments_are_named(tiny_world: WorldModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for hs in [(), (8, 1), (0, 4), (2, 2)]:
        with pytest.raises(ValueError, match="horizons"):
            run_fidelity(tiny_world, horizons=hs)
    with pytest.raises(ValueError, match="episodes and context"):
        run_fidelity(tiny_world, episodes=0)
    no_env = dataclasses.replace(tiny_world, config={"kind": "worldmodel"})
    with pytest.raises(ValueError, match="config.json: no 'env' field"):
        run_fidelity(no_env, episodes=1, horizons=(1,), context=1, lpips=False)
    monkeypatch.setenv("WORLDLOOM_LPIPS_DIR", str(tmp_path))  # no converted weights here
    with pytest.raises(FileNotFoundError, match="make lpips"):
        run_fidelity(tiny_world, episodes=1, horizons=(1,), context=1, lpips=True)
