"""Held-out rollout evaluation on a tiny untrained world model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from worldloom.actions import ActionSpec
from worldloom.data.collect import collect
from worldloom.data.format import Dataset
from worldloom.envs.arena import ARENA_ACTIONS
from worldloom.eval.metrics import psnr
from worldloom.eval.rollout import evaluate_rollouts, format_report, swap_actions
from worldloom.models.dit import CausalDiT, DynamicsConfig
from worldloom.models.vae import VAE, VAEConfig
from worldloom.runtime.simulator import SimConfig, WorldModel

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    return collect("arena", tmp_path_factory.mktemp("rollout") / "ds", episodes=3, steps=40, seed=5, progress=False)


@pytest.fixture(scope="module")
def model() -> WorldModel:
    torch.manual_seed(0)
    dit = CausalDiT(DynamicsConfig(dim=32, depth=1, heads=2, max_frames=8)).eval()
    with torch.no_grad():  # off adaLN-Zero's identity start, so the actions change the output
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return WorldModel(vae=VAE(VAEConfig(width=16, blocks=1)).eval(), dit=dit, config={},
                      action_spec=ARENA_ACTIONS, sim=SimConfig(steps=1, window=8))


@pytest.fixture(scope="module")
def result(model: WorldModel, data) -> dict:
    return evaluate_rollouts(model, data, context=4, horizon=6, episodes=3, batch=2, progress=False)


def test_result_shapes_and_keys(result: dict):
    assert result["n_episodes"] == 3
    for k in ("model", "copy_last", "copy_shifted", "recon", "swapped_actions"):
        assert len(result["psnr"][k]) == 6 and set(result["psnr_at"][k]) == {"1"}
        assert np.isfinite(result["psnr_mean"][k])
    assert set(result["ssim"]) == {"model", "copy_last", "recon"} and len(result["ssim"]["model"]) == 6
    af = result["action_following"]
    assert set(af) == {"model", "true_frames", "recon", "swapped_actions"}
    for r in af.values():
        assert {"h1_8", "h1_32", "exact_h1_8", "exact_h1_32", "still_h1_32"} <= set(r) and len(r["per_step"]) == 6
        assert sum(v["n"] for v in r["by_transition"]["h1_32"].values()) == 18  # every step has one kind
    assert result["swap"]["mode"] == "rotate" and "psnr_mean" in result["swap"]
    assert result["timing"]["frames_generated"] == 18 and result["timing"]["ms_per_frame"] > 0
    s = result["settings"]
    assert (s["context"], s["horizon"], s["sim"]["steps"], s["motion"]["follow_horizons"]) == (4, 6, 1, [6, 6])
    json.dumps(result, allow_nan=False)  # JSON-ready


def test_baselines_and_ceiling(result: dict, data):
    ds = Dataset.open(data)
    direct = np.mean([psnr(np.array(e.frames[4]), np.array(e.frames[3])) for e in ds])
    assert result["psnr"]["copy_last"][0] == pytest.approx(direct)
    # moving the last frame with the true camera can only help where the camera moved
    assert result["psnr_mean"]["copy_shifted"] >= result["psnr_mean"]["copy_last"] - 1e-6
    af = result["action_following"]
    assert af["true_frames"]["n_moving_h1_32"] > 0
    assert af["true_frames"]["h1_8"] >= 0.99 and af["true_frames"]["h1_32"] >= 0.99
    # wrong actions were really fed: the perturbed model's frames depend on them
    assert result["psnr"]["swapped_actions"] != result["psnr"]["model"]


def test_exact_frames_are_counted_apart(result: dict, data):
    ds = Dataset.open(data)
    fr = np.stack([np.array(e.frames[3:10]) for e in ds])  # (3, 1 + 6, H, W, 3): last context, then the truth
    still = np.array([[np.array_equal(f[i + 1], f[i]) for i in range(6)] for f in fr])
    copy_exact = np.array([[np.array_equal(f[i + 1], f[0]) for i in range(6)] for f in fr])
    ex = result["exact"]
    assert ex["still_share"] == pytest.approx(still.mean()) and 0 < still.mean() < 1  # the fixture has both kinds
    assert ex["exact_share"]["copy_last"] == pytest.approx(copy_exact.mean())
    assert ex["exact_share"]["recon"] == 0.0  # an untrained tokenizer never hits a frame bit for bit
    cl = psnr(np.broadcast_to(fr[:, :1], fr[:, 1:].shape), fr[:, 1:])  # (3, 6)
    assert ex["psnr_mean_changed"]["copy_last"] == pytest.approx(cl[~still].mean())
    assert "Exact frames" in format_report(result)


def test_a_temporal_decoder_that_only_copies_scores_as_copy_last(model: WorldModel, data):
    """The eval draws through the temporal decoder after the true last context frame: a decoder that copies the
    last frame (no motion compensation, gate shut open) is copy-last."""
    import dataclasses

    from worldloom.models.temporal_decoder import TemporalDecoder, TemporalDecoderConfig

    td = TemporalDecoder(TemporalDecoderConfig(width=8, blocks=1, gate_bias=60.0, motion_shift=0)).eval()
    r = evaluate_rollouts(dataclasses.replace(model, tdec=td), data, context=4, horizon=6, episodes=3, batch=2,
                          progress=False)
    assert r["psnr"]["model"] == pytest.approx(r["psnr"]["copy_last"])
    assert r["exact"]["exact_share"]["model"] == r["exact"]["exact_share"]["copy_last"] > 0
    assert r["action_following"]["model"]["h1_32"] == 0.0  # a frozen view follows nothing


def test_report(result: dict):
    md = format_report(result)
    assert "| model |" in md and "true frames (ceiling)" in md and "copy last frame" in md
    assert "Action-swap check" in md and "ms per generated frame" in md
    assert "oracle motion" in md and "| h1-6 | " in md and "turn" in md


def test_single_episode_batches_and_errors(model: WorldModel, data):
    r = evaluate_rollouts(model, data, context=2, horizon=3, episodes=1, batch=1, swap="roll", progress=False,
                          sim_overrides={"steps": 1, "seed": 3})
    assert r["n_episodes"] == 1 and len(r["psnr"]["model"]) == 3 and r["settings"]["sim"]["seed"] == 3
    with pytest.raises(ValueError, match="no episode"):
        evaluate_rollouts(model, data, context=4, horizon=100, progress=False)


def test_swap_actions():
    a = np.array([[0, 1, 2, 3, 4], [4, 4, 0, 1, 1]])
    rot, mode = swap_actions(a, ARENA_ACTIONS.names)
    assert mode == "rotate"
    np.testing.assert_array_equal(rot[0], [0, 4, 3, 1, 2])  # up->right, down->left, left->up, right->down
    assert ((rot != a) | (a == 0)).all()  # every direction is wrong, noop kept
    rolled, mode = swap_actions(a, ActionSpec(names=("noop", "jump")).names)
    assert mode == "roll"
    np.testing.assert_array_equal(rolled, a[::-1])
    np.testing.assert_array_equal(swap_actions(a[:1], ("a", "b"), "roll")[0], a[:1, ::-1])
    with pytest.raises(ValueError, match="rotate"):
        swap_actions(a, ("noop", "jump"), "rotate")


def test_mirror_axes_swaps_within_the_data_range_and_holds_a_still_axis():
    from worldloom.actions import Axis
    from worldloom.eval.rollout import mirror_axes

    spec = ActionSpec(names=("noop",), keys=((),), axes=(Axis("steer", -1, 1), Axis("gas", 0, 1), Axis("brake", 0, 1)))
    seen = [np.array([[-0.8, 0.1, 0.0], [0.8, 0.5, 0.0]]), np.array([[0.2, 0.3, 0.0]])]
    rollout = np.array([[[0.5, 0.1, 0.0], [-0.8, 0.45, 0.0]]], np.float32)  # (E, N, A)
    np.testing.assert_allclose(mirror_axes(rollout, seen, spec), [[[-0.5, 0.5, 0.0], [0.8, 0.15, 0.0]]], atol=1e-6)
    # a range skewed to one end still mirrors inside the axis's own range
    out = mirror_axes(np.array([[[1.0, 0.0, 0.0]]], np.float32), [np.array([[0.9, 0.0, 0.0], [1.0, 1.0, 0.0]])], spec)
    assert out.dtype == np.float32 and spec.check_axes(out.reshape(-1, 3), "mirrored").shape == (1, 3)


def test_several_axes_are_also_mirrored_one_at_a_time(tmp_path):
    """With several axes the swap check says which the model follows; an axis the data holds is left out."""
    from worldloom.actions import Axis
    from worldloom.data.writer import DatasetWriter

    spec = ActionSpec(names=("noop",), keys=((),), axes=(Axis("steer", -1, 1), Axis("gas", 0, 1), Axis("brake", 0, 1)))
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "ds", env="test", env_kwargs=None, frame_shape=(64, 64, 3), fps=10, action_spec=spec,
                       policy=None, seed=0) as w:
        for e in range(2):
            ax = np.c_[rng.uniform(-1, 1, 12), rng.uniform(0.1, 0.5, 12), np.zeros(12)].astype(np.float32)
            ax[0] = 0
            w.add_episode(rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8), np.zeros(12, np.int64), seed=e, axes=ax)
    torch.manual_seed(0)
    dit = CausalDiT(DynamicsConfig(dim=32, depth=1, heads=2, max_frames=8, n_actions=1, n_axes=3)).eval()
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    m = WorldModel(vae=VAE(VAEConfig(width=16, blocks=1)).eval(), dit=dit, config={}, action_spec=spec,
                   sim=SimConfig(steps=1, window=8))
    r = evaluate_rollouts(m, tmp_path / "ds", context=2, horizon=4, episodes=2, batch=2, progress=False)
    per = r["swap"]["per_axis"]
    assert set(per) == {"steer", "gas"}  # brake is held at 0 in the data: mirroring it changes nothing
    assert all(np.isfinite(v["psnr_gap"]) for v in per.values()) and per["steer"]["psnr_gap"] != 0
    assert "axes mirrored in the data's range" in r["swap"]["mode"]
    assert "one axis mirrored at a time: steer gap" in format_report(r)


def test_start_takes_the_context_later_in_the_episode(model: WorldModel, data):
    """``start`` moves the whole window: the copy-last baseline is scored on frames start+context..."""
    r = evaluate_rollouts(model, data, context=2, horizon=3, episodes=2, batch=2, start=20, progress=False)
    ds = Dataset.open(data)
    f = [np.array(ds[i].frames) for i in range(2)]
    want = np.mean([psnr(f[i][21], f[i][22]) for i in range(2)])
    assert r["settings"]["start"] == 20 and r["psnr"]["copy_last"][0] == pytest.approx(want, abs=1e-3)
    with pytest.raises(ValueError, match="start 30"):
        evaluate_rollouts(model, data, context=4, horizon=8, start=30, progress=False)


def test_a_dataset_with_swapped_action_names_is_refused(model: WorldModel, data, tmp_path):
    import shutil

    swapped = tmp_path / "swapped"
    shutil.copytree(data.path if hasattr(data, "path") else data, swapped)
    meta = json.loads((swapped / "meta.json").read_text())
    names = meta["action_spec"]["names"]
    names[1], names[2] = names[2], names[1]  # up <-> down
    (swapped / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"action mismatch: checkpoint .* \['noop', 'up', 'down'.*dataset .*swapped/meta.json "
                                         r"has 5 \['noop', 'down', 'up'"):
        evaluate_rollouts(model, swapped, context=4, horizon=2, episodes=1, progress=False)


def test_require_same_action_names():
    a = ActionSpec(names=("noop", "up"), keys=((" ",), ("w",)))
    a.require_same(ActionSpec(names=("noop", "up")), mine="a", theirs="b")  # keys may differ
    with pytest.raises(ValueError, match=r"a has 2 actions \['noop', 'up'\], b has 3"):
        a.require_same(ActionSpec(names=("noop", "up", "down")), mine="a", theirs="b")
