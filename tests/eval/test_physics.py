"""Physics suite: the colour tracker, the ground-truth floor, lost balls, and a tiny model end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from worldloom.eval.physics import run_physics, score, simulate, summarize, track_balls
from worldloom.eval.suite import SuiteResult


@pytest.fixture
def tiny_phys_world():
    """An untrained, tiny world model for phys2d's one-action spec (as ``tiny_world`` in conftest)."""
    from worldloom.envs.phys2d import PHYS2D_ACTIONS
    from worldloom.models.dit import CausalDiT, DynamicsConfig
    from worldloom.models.vae import VAE, VAEConfig
    from worldloom.runtime.simulator import SimConfig, WorldModel

    torch.manual_seed(0)
    vae = VAE(VAEConfig(width=16, blocks=1)).eval()
    dit = CausalDiT(DynamicsConfig(dim=32, depth=2, heads=2, max_frames=8, n_actions=1)).eval()
    with torch.no_grad():  # leave adaLN-Zero's identity start so outputs depend on every input
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    config = {"kind": "worldmodel", "env": "phys2d", "env_kwargs": {}}
    return WorldModel(vae, dit, config, PHYS2D_ACTIONS, sim=SimConfig(steps=2, window=6))


def test_tracker_finds_known_centroids():
    f = np.full((2, 32, 32, 3), 255, np.uint8)
    f[0, 10:15, 20:25] = (255, 0, 0)  # red 5x5 square: centre (22.5, 12.5) in pixel-centre coordinates
    f[0, 2:4, 3:9] = (0, 0, 250)  # blue 6x2 bar: centre (6, 3)
    f[1, 5:8, 5:8] = (200, 40, 30)  # a darker red still counts as red
    for tracker in ("binary", "soft"):
        c, area = track_balls(f, tracker)  # (2, 2, 2), (2, 2)
        np.testing.assert_allclose(c[0, 0], (22.5, 12.5), atol=1e-6)
        np.testing.assert_allclose(c[0, 1], (6.0, 3.0), atol=1e-6)
        np.testing.assert_allclose(c[1, 0], (6.5, 6.5), atol=1e-6)
        assert area[0, 0] == pytest.approx(25, rel=0.02) and area[1, 1] == 0 and np.isnan(c[1, 1]).all()
    with pytest.raises(ValueError, match="tracker"):
        track_balls(f, "hough")
    with pytest.raises(ValueError, match="uint8"):
        track_balls(f.astype(np.float32))


def test_tracker_agrees_with_env_state():
    frames, st = simulate("collision", "id", 2, seed=5)
    c, _ = track_balls(frames)  # (E, T, 2, 2) px
    r, P = st["ball_radius"][..., None], st["ball_pos"]
    inside = ((P - r >= 0) & (P + r <= 10)).all(-1)  # (E, T, 2)
    err_binary = np.abs(c - st["ball_pos_px"])[inside]
    err_soft = np.abs(track_balls(frames, "soft")[0] - st["ball_pos_px"])[inside]
    assert err_binary.max() < 0.5 and err_soft.max() < 0.1 and err_soft.mean() < err_binary.mean()


def test_floor_is_small_and_nothing_is_lost():
    res = run_physics(None, episodes=3, seed=123)
    assert isinstance(res, SuiteResult) and "model" not in res.metrics["groups"]["uniform_id"]
    for key, g in res.metrics["groups"].items():
        fl = g["floor"]
        assert fl["pairs"] > 20 and fl["lost_frac"] == 0.0, key
        assert 0.0 < fl["vel_err"] < 0.35, key  # units/s; speeds are 1-4 units/s in distribution
    coll = res.metrics["groups"]["collision_id"]["floor"]
    assert coll["momentum_err_pct"] < 15 and coll["energy_err_pct"] < 15
    soft = run_physics(None, episodes=3, seed=123, tracker="soft")
    assert soft.metrics["floor_vel_err"]["uniform_id"] < res.metrics["floor_vel_err"]["uniform_id"] / 2
    with pytest.raises(ValueError, match="episodes"):
        run_physics(None, episodes=0)


def test_metric_catches_frozen_and_vanished_balls():
    frames, st = simulate("uniform", "id", 3, seed=9)
    kw = {"dt": 0.1, "world_size": 10.0}
    truth = summarize(score(frames[:, 4:], st, **kw), collision=False)
    frozen = np.repeat(frames[:, 3:4], 28, axis=1)  # a model that stops the ball
    fz = summarize(score(frozen, st, **kw), collision=False)
    speed = float(np.abs(st["ball_vel"][:, 0, 0, 0]).mean())
    assert truth["vel_err"] < 0.35 and fz["vel_err"] == pytest.approx(speed, rel=0.15)
    blank = np.full_like(frames[:, 4:], 255)  # a model that erases the ball
    bl = summarize(score(blank, st, **kw), collision=False)
    assert bl["lost_frac"] == 1.0 and np.isnan(bl["vel_err"]) and bl["pairs"] == truth["pairs"]
    cf, cst = simulate("collision", "id", 2, seed=9)
    cz = summarize(score(np.repeat(cf[:, 3:4], 28, axis=1), cst, **kw), collision=True)
    ct = summarize(score(cf[:, 4:], cst, **kw), collision=True)
    assert cz["momentum_err_pct"] > 3 * ct["momentum_err_pct"] and cz["energy_err_pct"] > 50


def test_run_physics_tiny_model(tiny_phys_world):
    res = run_physics(tiny_phys_world, episodes=2, seed=7, sim_overrides={"steps": 1})
    assert res.name == "physics" and res.seconds > 0
    groups = [(s, d) for s in ("uniform", "parabola", "collision") for d in ("id", "ood")]
    assert set(res.metrics["groups"]) == {f"{s}_{d}" for s, d in groups}
    for g in res.metrics["groups"].values():
        assert {"model", "tokenizer", "floor"} <= set(g) and 0.0 <= g["model"]["lost_frac"] <= 1.0
    assert set(res.metrics["id_ratio_to_floor"]) == {"uniform", "parabola"}
    vel, coll = res.tables
    assert len(vel.rows) == 6 and len(coll.rows) == 2 and vel.columns[2:5] == ["model", "tokenizer", "floor"]
    assert all(len(p.x) == 27 and len(p.series) == 6 for p in res.plots)
    assert set(res.videos) == {f"{s}-{d}" for s, d in groups}
    assert all(v.shape == (32, 64, 3 * 64 + 4, 3) and v.dtype == np.uint8 for v in res.videos.values())
    json.dumps(res.to_json())  # JSON-ready, NaN (e.g. no tracked pair) as null


def test_run_physics_one_model_per_scene(tiny_phys_world):
    """PhyWorld trains one model per scene: a dict of models scores each scene with its own model."""
    import copy

    from worldloom.eval.suites import SuiteError, physics_models

    other = copy.deepcopy(tiny_phys_world)
    with torch.no_grad():
        for p in other.dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    per = {"uniform": other, "parabola": tiny_phys_world, "collision": tiny_phys_world}
    mixed = run_physics(per, episodes=1, seed=7, sim_overrides={"steps": 1}).metrics["groups"]
    one = run_physics(tiny_phys_world, episodes=1, seed=7, sim_overrides={"steps": 1}).metrics["groups"]
    assert mixed["parabola_id"]["model"] == one["parabola_id"]["model"]  # same model, same numbers
    assert mixed["uniform_id"]["model"] != one["uniform_id"]["model"]  # its own model
    assert mixed["uniform_id"]["floor"] == one["uniform_id"]["floor"]
    with pytest.raises(ValueError, match="collision"):
        run_physics({"uniform": other, "parabola": other}, episodes=1)
    with pytest.raises(SuiteError, match="collision"):
        physics_models({"uniform": other, "parabola": other})
    with pytest.raises(SuiteError, match="no-such-uniform"):  # '{scene}' expands per scene, and names the bad one
        physics_models("no-such-{scene}")


def test_run_suites_prefers_per_scene_models(tiny_phys_world):
    """A per-scene physics checkpoint is used even when the main checkpoint is a phys2d one."""
    import copy

    from worldloom.eval.suites import run_suites

    other = copy.deepcopy(tiny_phys_world)
    with torch.no_grad():
        for p in other.dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    opts = {"physics": {"episodes": 1, "seed": 7}}
    (main_res,), _ = run_suites(tiny_phys_world, ["physics"], options=opts, sim_overrides={"steps": 1})
    (per_res,), _ = run_suites(tiny_phys_world, ["physics"], options=opts, sim_overrides={"steps": 1},
                               physics_checkpoint={s: other for s in ("uniform", "parabola", "collision")})
    assert main_res.metrics["vel_err"] != per_res.metrics["vel_err"]
    assert any("one model per scene" in n for n in per_res.notes)
