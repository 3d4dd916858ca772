"""The wall score: the truth scores 1, a wall left where it was scores less, a wall painted out 0."""

import numpy as np

from worldloom.envs.arena import OUTSIDE
from worldloom.envs.registry import priors
from worldloom.eval.structure import format_structure, score_structure, structure_iou, structure_metrics, structure_table


def _frames(wall_rows: list[int]) -> np.ndarray:
    f = np.full((1, len(wall_rows), 32, 32, 3), 150, np.uint8)
    for i, r in enumerate(wall_rows):
        f[0, i, r:] = OUTSIDE  # a wall band from row r down
    return f


def test_walls_kept_moved_and_lost():
    truth = _frames([20, 18, 16])  # the camera scrolls: the wall comes up 2 px a frame
    left = _frames([20, 20, 20])  # drawn where it was
    iou = structure_iou(truth, truth, OUTSIDE)
    assert np.allclose(iou, 1.0)
    moved = structure_iou(left, truth, OUTSIDE)[0]
    assert moved[0] == 1.0 and moved[1] < moved[0] and moved[2] < moved[1]
    blank = np.full_like(truth, 150)
    assert np.allclose(structure_iou(blank, truth, OUTSIDE), 0.0)
    assert np.isnan(structure_iou(blank, blank, OUTSIDE)).all()  # no wall in either: not scored
    res = score_structure({"model": left, "copy_last": truth}, truth, OUTSIDE, spans=(2, 8))
    assert res["copy_last"]["iou_h1_2"] == 1.0 and res["model"]["iou_h1_2"] < 1.0 and "iou_h1_8" not in res["model"]
    assert "| model |" in format_structure(res)
    t = structure_table(res)  # the report's table: one row per candidate, the same numbers
    assert t.columns == ["", "h1-2", "frames"] and [r[0] for r in t.rows] == ["model", "copy_last"]
    assert t.rows[0][1] == res["model"]["iou_h1_2"] and t.rows[0][2] == res["model"]["n_frames"] == 3
    assert structure_metrics(res) == {"walls_iou_h1_2": res["model"]["iou_h1_2"]}
    spans = score_structure({"model": left}, truth, OUTSIDE)  # default spans: h1-8 capped at the rollout, and all of it
    assert set(k for k in spans["model"] if k.startswith("iou_")) == {"iou_h1_3"}


def test_the_arena_states_its_wall_colour_and_other_worlds_none():
    assert tuple(priors("arena")["structure_color"]) == tuple(OUTSIDE)
    assert priors("phys2d")["structure_color"] is None and priors(None)["structure_color"] is None


def test_objects_of_the_walls_colour_are_left_out():
    truth = _frames([32, 32])  # no wall in view
    truth[0, :, 10:16, 10:16] = OUTSIDE  # an object's dark outline
    state = {"agent_pos_view": np.array([[[13.0, 13.0], [13.0, 13.0]]]), "agent_radius": np.full((1, 2), 3.0),
             "agent_color": np.zeros((1, 2, 3))}
    blank = np.full_like(truth, 150)
    assert not np.isnan(score_structure({"m": blank}, truth, OUTSIDE)["m"]["iou"][0])  # scored, 0
    assert score_structure({"m": blank}, truth, OUTSIDE, state)["m"]["iou"] == [None, None]  # left out
