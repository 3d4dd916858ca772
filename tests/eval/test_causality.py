"""Causality suite on a tiny untrained world model: shapes, ceilings, counterfactual noise sharing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from worldloom.eval.causality import DIRECTIONS, confusion, direction, run_causality
from worldloom.eval.suite import SuiteResult

E, N = 2, 3  # contexts, steps per action


@pytest.fixture
def result(tiny_world) -> SuiteResult:
    return run_causality(tiny_world, episodes=E, steps=N)


def test_direction_and_confusion():
    v = np.array([[0, 0], [0, -4], [0, 4], [-4, 0], [4, 0], [4, -4], [-8, 0]])
    assert [DIRECTIONS[i] for i in direction(v)] == ["still", "up", "down", "left", "right", "diagonal", "left"]
    m = confusion(v, np.zeros_like(v))  # an estimator that never sees motion
    assert m.sum() == len(v) and m[:, 0].sum() == len(v) and m[0, 0] == 1 and m[3, 0] == 2


def test_result_shapes_and_ceiling(result: SuiteResult):
    m = result.to_json()["metrics"]
    json.dumps(result.to_json(), allow_nan=False)
    assert set(m["per_action"]) == {"noop", "up", "down", "left", "right"}
    conf_m, conf_t = np.array(m["confusion"]["model"]), np.array(m["confusion"]["true_frames"])
    assert conf_m.shape == conf_t.shape == (6, 6)
    assert conf_m.sum() == conf_t.sum() == 5 * E * N  # every step of every action, once
    assert (conf_m.sum(1) == conf_t.sum(1)).all()  # same true directions in both
    # The estimator on the true frames is the ceiling: the arena's own motion is read right.
    assert m["accuracy_ceiling"] >= 0.95 and m["moving_steps"] > 0
    assert np.trace(conf_t) / conf_t.sum() >= 0.95
    for a in ("up", "down", "left", "right"):  # holding a direction moves the true camera
        assert m["per_action"][a]["moving_steps"] > 0
    assert len(m["counterfactuals"]) == 10 and m["cf_l1_true"] > 0
    assert m["cf_motion_hit_ceiling"] >= 0.95
    assert m["noop"]["still_steps"] + m["per_action"]["noop"]["moving_steps"] == E * N
    assert m["settings"]["seeds"] == [300000, 300000 + E - 1]
    assert len(m["per_step"]["model"]) == N
    assert {p["title"][:16] for p in result.to_json()["plots"]} == {"Action following", "Counterfactual d"}
    video = next(iter(result.videos.values()))
    assert video.dtype == np.uint8 and video.shape == (5 * (N + 1), 64, 3 * 64 + 4, 3)


def test_actions_change_generated_rollouts(result: SuiteResult, tiny_world):
    """Same noise per lane for every action: the generated difference is the action's alone."""
    assert result.metrics["cf_l1_model"] > 0  # the tiny model does condition on actions
    with torch.no_grad():  # every action id gets the same embedding: actions are now ignored
        tiny_world.dit.a_emb.weight[:] = tiny_world.dit.a_emb.weight[0]
    blind = run_causality(tiny_world, episodes=E, steps=N)
    assert blind.metrics["cf_l1_model"] == 0.0 and blind.metrics["cf_l1_ratio"] == 0.0
    assert blind.metrics["cf_motion_hit"] == 0.0  # identical rollouts never show the true difference
    assert blind.metrics["cf_l1_true"] == result.metrics["cf_l1_true"]  # the truth does not depend on the model


def test_errors_name_the_field(tiny_world):
    with pytest.raises(ValueError, match="episodes"):
        run_causality(tiny_world, episodes=0)
    tiny_world.config = {**tiny_world.config, "env": "phys2d"}
    with pytest.raises(ValueError, match="config\\['env'\\]"):
        run_causality(tiny_world, episodes=1, steps=1)
