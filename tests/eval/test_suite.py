"""The one batched rollout loop every suite uses: a batch is one Simulator, seeded alike each call, shapes checked."""

from __future__ import annotations

import numpy as np
import pytest

from worldloom.eval.suite import generate
from worldloom.runtime.simulator import Simulator


def _episodes(n: int, c: int = 3, h: int = 5):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 255, (n, c, 64, 64, 3), dtype=np.uint8), rng.integers(0, 5, (n, c)),
            rng.integers(0, 5, (n, h)))


def test_generate_matches_one_simulator_per_episode(tiny_world):
    ctx, ctx_a, acts = _episodes(3)
    run = generate(tiny_world, ctx, ctx_a, acts, batch=2, overrides={"seed": 4})  # batches of 2 and 1
    assert run.frames.shape == (3, 5, 64, 64, 3) and run.frames.dtype == np.uint8 and run.steps == 10
    assert run.sim_cfg.seed == 4 and run.seconds > 0
    for lo, hi in ((0, 2), (2, 3)):  # each batch is exactly one Simulator of that batch, reset on its contexts
        sim = Simulator(tiny_world, batch=hi - lo, seed=4)
        sim.reset(ctx[lo:hi], ctx_a[lo:hi])
        ref = sim.rollout(acts[lo:hi])
        assert np.array_equal(ref if hi - lo > 1 else ref[None], run.frames[lo:hi])
    again = generate(tiny_world, ctx, ctx_a, acts, batch=2, overrides={"seed": 4})
    assert np.array_equal(again.frames, run.frames)  # same seed, same noise: what the swapped-action rollouts rely on
    other = generate(tiny_world, ctx, ctx_a, (acts + 1) % 5, batch=2, overrides={"seed": 4})
    assert not np.array_equal(other.frames, run.frames)


def test_generate_refuses_mismatched_episodes(tiny_world):
    ctx, ctx_a, acts = _episodes(3)
    with pytest.raises(ValueError, match="3 contexts, 3 context actions and 2 action sequences"):
        generate(tiny_world, ctx, ctx_a, acts[:2])
