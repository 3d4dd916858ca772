"""Clip focus: the objects that move against the background, and clips drawn where they are."""

import numpy as np
import pytest
import torch

from worldloom.training.dynamics import ClipSampler
from worldloom.training.focus import moving_objects, window_weights


def _state(T: int = 6) -> dict[str, np.ndarray]:
    t = np.arange(T, dtype=np.float32)[:, None]
    ball_view = np.stack([np.hstack([20 + 2 * t, 30 + 0 * t]),   # moves in view and world: counts
                          np.hstack([-20 + 2 * t, 30 + 0 * t])], 1)  # moves but out of view: does not
    ball_world = ball_view + 100
    return {
        "ball_pos_view": ball_view, "ball_pos": ball_world, "ball_radius": np.full((T, 2), 5.0, np.float32),
        "ball_color": np.zeros((T, 2, 3), np.float32),
        # a landmark the camera scrolls past: moves in view only
        "landmark_pos_view": np.hstack([40 - 2 * t, 40 + 0 * t])[:, None], "landmark_pos": np.full((T, 1, 2), 9.0, np.float32),
        "landmark_radius": np.full((T, 1), 5.0, np.float32), "landmark_color": np.ones((T, 1, 3), np.float32),
        # the agent the camera follows: moves in the world only
        "agent_pos_view": np.full((T, 2), 32.0, np.float32), "agent_pos": np.hstack([50 + 2 * t, 50 + 0 * t]),
        "agent_radius": np.full((T,), 5.0, np.float32), "agent_color": np.full((T, 3), 0.5, np.float32),
    }


def test_only_objects_moving_against_the_background_count():
    c = moving_objects(_state(), 64)
    assert moving_objects(_state(), 64, ("landmark", "agent")).tolist() == [0] * 6
    assert c.tolist() == [0, 1, 1, 1, 1, 1]  # the first frame has no step


def test_window_weights_sum_the_targets_and_refuse_a_still_world(tmp_path):
    w = window_weights([np.array([0, 1, 0, 2, 0.0])], 3, tmp_path)
    assert w[0].tolist() == [1, 2, 2]  # frames s+1 .. s+2 of each window
    with pytest.raises(ValueError, match=str(tmp_path)):
        window_weights([np.zeros(5)], 3, tmp_path)


def test_focused_clips_come_from_weighted_windows_and_focus_zero_is_unchanged():
    lat = [torch.arange(10.0).reshape(10, 1, 1, 1).expand(10, 2, 2, 2) + 100 * e for e in range(2)]
    acts = [torch.zeros(10, dtype=torch.long)] * 2
    weights = [torch.zeros(7), torch.tensor([0, 0, 0, 1.0, 0, 0, 0])]  # only episode 1, start 3
    s = ClipSampler(lat, acts, 4, focus=1.0, weights=weights)
    x, _ = s(torch.Generator().manual_seed(0), 8, torch.device("cpu"))
    assert set(s.picks) == {(1, 3)} and torch.all(x[:, 0, 0, 0, 0] == 103)
    half = ClipSampler(lat, acts, 4, focus=0.5, weights=weights)
    half(torch.Generator().manual_seed(0), 64, torch.device("cpu"))
    share = sum(p == (1, 3) for p in half.picks) / 64
    assert 0.3 < share < 0.75  # half focused, plus the uniform draws' 1 in 14
    a, b = ClipSampler(lat, acts, 4), ClipSampler(lat, acts, 4, focus=0.0)
    xa, _ = a(torch.Generator().manual_seed(1), 5, torch.device("cpu"))
    xb, _ = b(torch.Generator().manual_seed(1), 5, torch.device("cpu"))
    assert a.picks == b.picks and torch.equal(xa, xb)
    with pytest.raises(ValueError, match="clip focus"):
        ClipSampler(lat, acts, 4, focus=0.5)
