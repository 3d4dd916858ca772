"""Persistence suite: round-trip paths the truth retraces, and the suite on a tiny untrained model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worldloom.data.collect import make_env
from worldloom.envs.registry import agent_half_px
from worldloom.eval.persistence import (
    SEED,
    _false_by_kind,
    _probe,
    masked_psnr,
    plan_path,
    run_persistence,
)

_OPP = {"up": "down", "down": "up", "left": "right", "right": "left", None: None}
_IDS = {None: 0, "up": 1, "down": 2, "left": 3, "right": 4}


@pytest.mark.parametrize("k", [2, 5, 8, 37, 128])
def test_plan_path_reverses_and_stays_inside(k: int):
    start = np.array([68.0, 68.0])
    out, back = plan_path(k, start, lo=19, hi=237, far=80, step_px=16, rng=np.random.default_rng(k))
    assert len(out) == len(back) == k
    moves_out = [a for a in out if a is not None]
    assert moves_out, "the path must leave"
    assert [a for a in back if a is not None] == [_OPP[a] for a in reversed(moves_out)]
    pos, far = start.copy(), 0.0  # planned positions (16 px per 4-frame hold)
    d = {"up": (0, -4), "down": (0, 4), "left": (-4, 0), "right": (4, 0)}
    for a in out:
        if a is not None:
            pos += d[a]
            assert (pos >= 19).all() and (pos <= 237).all()
            far = max(far, np.abs(pos - start).max())
    if k >= 128:  # long trips leave the departure view (64 px) entirely
        assert far >= 80


def test_truth_returns_to_the_departure_view():
    env = make_env("arena", frame_size=64)
    for k in (8, 128):
        probes = [_probe(env, SEED + i, k, 4, 4, _IDS, agent_half_px("arena")) for i in range(6)]
        ok = [p for p in probes if p is not None]
        assert len(ok) >= 4, f"k={k}: only {len(ok)} of 6 true round trips came back"
        for p in ok:
            assert p["pos_err"] < 2.0  # within the camera's 4 px snap cell
            assert len(p["actions"]) == len(p["truth"]) == 2 * k + 4
            # the revisit frames show the departure place: only the moving balls differ
            diff = (p["truth"][-1] != p["context"][-1]).any(-1).mean()
            assert diff < 0.1
        if k == 128:
            assert min(p["far_px"] for p in ok) >= 64


def test_masked_psnr():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = a.copy()
    b[:, :2] = 255  # differ only in the top two rows
    mask = np.zeros((2, 8, 8), bool)
    assert masked_psnr(a, b, mask)[0] < 10
    mask[:, :2] = True
    assert masked_psnr(a, b, mask)[0] == pytest.approx(10 * np.log10(255**2 / 1e-3))


def test_run_persistence_tiny(tiny_world):
    ks, rev = (2, 4), 3
    r = run_persistence(tiny_world, ks=ks, probes=2, revisit=rev)
    j = r.to_json()
    json.dumps(j, allow_nan=False)
    m = j["metrics"]
    assert [row["k"] for row in m["per_k"]] == list(ks)
    assert m["context_window"] == 6 and m["context_sink"] == 0
    for row in m["per_k"]:
        assert row["probes"] == 2 and 0 < row["accept_rate"] <= 1
        # perfect memory (the true departure frame) scores the place nearly exactly once balls and agent are
        # masked; an untrained model is far below it
        assert row["psnr_memory_static"] > 40 and m[f"psnr_static_k{row['k']}"] < 30
        assert row["psnr_memory_static"] >= row["psnr_memory"] - 1e-9
        assert 0 < row["psnr_recon"] < 78 and -1 <= row["ssim"] <= 1
    # window 6: the departure is still attended after 2k + 1 = 5 frames (k=2), not after 9 (k=4)
    assert [row["departure_in_context"] for row in m["per_k"]] == [True, False]
    assert set(r.videos) == {"k=2, window: round trip, probe 0", "k=4, window: round trip, probe 0"}
    assert r.videos["k=4, window: round trip, probe 0"].shape == (1 + 2 * 4 + rev, 64, 196, 3)
    curve = next(p for p in j["plots"] if p["title"].startswith("PSNR along"))
    assert len(curve["x"]) == 2 * 4 + rev
    assert "window of 6 frames" in " ".join(r.notes)


def test_memories_side_by_side_on_the_same_probes(tiny_world):
    """Every memory kind is scored on the same round trips, next to the same baselines."""
    r = run_persistence(tiny_world, ks=(4,), probes=2, revisit=2, memories=("window", "place", "similar"), lpips=False,
                        sim_overrides={"window": 4, "memory_slots": 1})
    pm = r.metrics["per_memory"]
    assert list(pm) == ["window", "place", "similar"] and r.metrics["memory"] == "window"
    assert len(r.tables[0].rows) == 3 and [row[0] for row in r.tables[0].rows] == ["window", "place", "similar"]
    for rows in pm.values():
        (row,) = rows
        assert row["psnr_memory_static"] == pm["window"][0]["psnr_memory_static"]  # the same probes and truth
        assert row["lpips"] is None
        assert row["landmarks_seen"] >= 0
        for key in ("landmarks", "landmarks_memory", "landmarks_far", "landmarks_recon"):
            assert row[key] is None or 0.0 <= row[key] <= 1.0
        if row["landmarks_memory"] is not None:  # the true departure frame draws the place's landmarks
            assert row["landmarks_memory"] >= 0.9
    assert pm["place"][0]["psnr"] != pm["window"][0]["psnr"]  # the place memory changed what the model drew


def test_sink_is_one_of_the_memories(tiny_world):
    r = run_persistence(tiny_world, ks=(4,), probes=1, revisit=1, sim_overrides={"sink": 1, "window": 4})
    assert r.metrics["context_sink"] == 1 and r.metrics["memory"] == "sink"
    assert "1 sink frame(s)" in r.metrics["settings"]["context_policy"]


def test_bad_settings_name_the_field(tiny_world):
    with pytest.raises(ValueError, match="ks"):
        run_persistence(tiny_world, ks=(1, 8))
    with pytest.raises(ValueError, match="probes"):
        run_persistence(tiny_world, ks=(8,), probes=0)


def test_a_ball_copied_back_from_memory_is_a_false_object_on_return():
    """The probe records every object colour; a revisit frame with a ball pasted where the truth has floor
    (what a memory that copies the departure frame draws) counts, the true revisit frame does not."""
    from worldloom.eval.haze import false_objects

    env = make_env("arena", frame_size=64)
    p = next(q for q in (_probe(env, SEED + i, 8, 4, 4, _IDS, agent_half_px("arena")) for i in range(6)) if q is not None)
    cfg = env.unwrapped.cfg
    assert p["colors"].shape == (1 + cfg.n_balls + len(p["landmarks"]["landmark_color"][0]), 3)  # agent, balls, landmarks
    rev = p["truth"][-4:][None]  # (1, R, H, W, 3)
    assert not false_objects(rev, rev, p["colors"][None]).any()
    ghost = rev.copy()
    floor = (np.abs(rev[0].astype(int) - np.median(rev[0, 0], (0, 1))).max(-1) < 30).all(0)  # floor in every frame
    y, x = next((y, x) for y in range(8, 56) for x in range(8, 56) if floor[y - 3: y + 4, x - 3: x + 4].all())
    ghost[0, :, y - 3: y + 4, x - 3: x + 4] = p["colors"][1].astype(np.uint8)  # a ball's colour, 7x7 px
    assert false_objects(ghost, rev, p["colors"][None]).all()
    # split by kind, it is a ball's: the balls copied back, apart from landmarks drawn where none is
    assert p["color_kinds"][:2] == ["agent", "ball"] and len(p["color_kinds"]) == len(p["colors"])
    split = _false_by_kind(ghost, rev, p["colors"][None], p["color_kinds"])
    assert split == {"agent": 0.0, "ball": 1.0, "landmark": 0.0}
