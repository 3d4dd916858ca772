"""The rollout bench's flatness: growth in per-frame time is caught, another process's burst is not."""

import numpy as np
import pytest

from worldloom.runtime.bench import flatness


def test_flatness_catches_a_frame_time_that_grows():
    ms = np.linspace(20.0, 30.0, 10_000)  # a cache or bank that grows: 1.5x slower by the end
    assert flatness(ms) == pytest.approx(np.median(ms[-1000:]) / np.median(ms[100:1100]), rel=1e-3)
    assert flatness(ms) > 1.3


def test_flatness_is_not_moved_by_a_burst_of_slow_frames():
    rng = np.random.default_rng(0)
    ms = 20.0 + rng.normal(0, 1, 10_000)
    ms[-100:] *= 2.0  # another process takes a core for the last 100 frames
    ms[rng.choice(10_000, 500, replace=False)] *= 3.0  # and scattered hiccups
    assert abs(flatness(ms) - 1.0) < 0.05
    assert ms[-100:].mean() / ms[100:200].mean() > 1.5  # what a mean over 100-frame stretches would say


def test_flatness_needs_two_spans_after_frame_100():
    assert flatness(np.ones(199)) is None
    ms = np.concatenate([np.full(100, 50.0), np.full(100, 10.0), np.full(100, 12.0)])  # 300: spans 100-200, 200-300
    assert flatness(ms) == pytest.approx(1.2)
