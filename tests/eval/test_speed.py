"""Speed suite: the rollout bench's numbers as a SuiteResult."""

from __future__ import annotations

import json

import pytest

from worldloom.eval.speed import run_speed


def test_speed_tiny(tiny_world):
    r = run_speed(tiny_world, frames=6)
    j = r.to_json()
    json.dumps(j, allow_nan=False)
    m = j["metrics"]
    assert r.name == "speed" and m["fps"] > 0
    assert 0 < m["latency_p50_ms"] <= m["latency_p95_ms"] <= m["latency_p99_ms"]
    assert {"stage_denoise_ms", "stage_cache_write_ms", "stage_decode_ms"} <= set(m)
    assert m["flatness_ratio"] is None  # needs >= 200 frames: not measured, not invented
    b = m["bench"]
    assert b["frames"] == 6 and b["sim"]["steps"] == 2 and b["sim"]["window"] == 6
    assert b["context_source"].startswith("arena")
    titles = [t["title"] for t in j["tables"]]
    assert any(t.startswith("Speed") for t in titles) and any(t.startswith("Memory") for t in titles)


def test_speed_overrides_and_errors(tiny_world):
    r = run_speed(tiny_world, frames=2, sim_overrides={"steps": 1})
    assert r.metrics["bench"]["sim"]["steps"] == 1 and r.metrics["bench"]["sim"]["memory"] == "window"
    mem = run_speed(tiny_world, frames=2, sim_overrides={"memory": "place_first"})
    assert mem.metrics["bench"]["sim"]["memory"] == "place_first"  # the bench says which memory it timed
    with pytest.raises(ValueError, match="frames"):
        run_speed(tiny_world, frames=0)
