"""ActionSpec with continuous axes: ranges, normalisation, checks, round trip, and what must match."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldloom.actions import ActionSpec, Axis


def spec() -> ActionSpec:
    return ActionSpec(names=("noop", "fire"), keys=((), (" ",)),
                      axes=(Axis("steer", -0.5, 0.5, "rad", (("ArrowLeft", -0.5), ("ArrowRight", 0.5))),
                            Axis("throttle", 0.0, 1.0, "", (("ArrowUp", 1.0),))))


def test_round_trip_and_old_files() -> None:
    s = spec()
    assert ActionSpec.from_dict(s.to_dict()) == s and s.n == 2 and s.n_axes == 2
    old = ActionSpec.from_dict({"names": ["a", "b"], "keys": [["x"], []], "axes": []})  # files written before axes
    assert old.n_axes == 0 and old.rest_axes().shape == (0,)
    with pytest.raises(ValueError, match=r"axes\[0\]: expected an object"):
        ActionSpec.from_dict({"names": ["a"], "axes": ["steer"]})


def test_normalise_to_unit_range_numpy_and_torch() -> None:
    s = spec()
    v = np.array([[-0.5, 0.0], [0.5, 1.0], [0.0, 0.5]], np.float32)
    want = np.array([[-1, -1], [1, 1], [0, 0]], np.float32)
    assert np.allclose(s.normalize(v), want)
    t = s.normalize(torch.from_numpy(v))
    assert torch.is_tensor(t) and torch.allclose(t, torch.from_numpy(want))
    assert s.rest_axes().tolist() == [0.0, 0.0]  # 0 is inside both ranges
    assert Axis("x", 1.0, 3.0).rest == 1.0  # else the nearer end


def test_checks_name_the_axis_and_index() -> None:
    s = spec()
    with pytest.raises(ValueError, match=r"here: axis 'throttle' value 1.5 at index \(1,\) is outside \[0.0, 1.0\]"):
        s.check_axes(np.array([[0.0, 0.2], [0.1, 1.5]]), "here")
    with pytest.raises(ValueError, match="expected 2 axis values"):
        s.check_axes(np.zeros((3, 1)), "here")
    with pytest.raises(ValueError, match="axis 'steer'"):
        s.check_axes(np.array([[np.nan, 0.0]]), "here")
    with pytest.raises(ValueError, match="low < high"):
        Axis("bad", 1.0, 1.0)
    with pytest.raises(ValueError, match="outside"):
        Axis("bad", 0.0, 1.0, keys=(("k", 2.0),))


def test_a_different_range_is_a_different_model() -> None:
    s = spec()
    other = ActionSpec(names=s.names, keys=s.keys, axes=(Axis("steer", -1.0, 1.0), s.axes[1]))
    with pytest.raises(ValueError, match="axis mismatch: mine has axes"):
        s.require_same(other, mine="mine", theirs="theirs")
    s.require_same(ActionSpec(names=s.names, axes=tuple(Axis(a.name, a.low, a.high) for a in s.axes)),
                   mine="m", theirs="t")  # keys and units may differ


def test_float32_rounding_at_a_wide_ranges_end_is_inside() -> None:
    """Pixel-sized ranges (LeRobot's PushT: 0..512): a float32 value one ulp past an end is still in range."""
    s = ActionSpec(names=("noop",), axes=(Axis("x", 12.34, 511.7),))
    mirrored = np.float32(12.34 + 511.7) - np.float32(12.34)  # 511.70004 in float32
    assert s.check_axes(np.array([[mirrored]]), "here").shape == (1, 1)
    with pytest.raises(ValueError, match="outside"):
        s.check_axes(np.array([[511.8]]), "here")


def test_a_pointer_axis_round_trips_and_a_step_takes_the_envs_form() -> None:
    ax = Axis("yaw", -1.0, 1.0, "rad", (("q", -1.0),), mouse="x")
    assert ax.gain == pytest.approx(0.01)  # the span per 200 px by default
    d = ax.to_dict()
    assert d["mouse"] == "x" and d["mouse_gain"] == 0.0  # as given: a reload is the same axis
    assert Axis.from_dict(d, "a") == ax
    assert "mouse" not in Axis("plain").to_dict()  # unchanged files for axes without a pointer
    with pytest.raises(ValueError, match="axis 'yaw': mouse must be 'x', 'y' or ''"):
        Axis("yaw", mouse="z")
    keys_only = ActionSpec(names=("noop", "fire"))
    box = ActionSpec(names=("noop",), axes=(Axis("steer"),))
    both = ActionSpec(names=("noop", "fire"), axes=(Axis("steer"),))
    assert keys_only.env_action(1) == 1
    assert np.array_equal(box.env_action(0, [0.5]), [0.5]) and np.array_equal(box.env_action(0), [0.0])
    a, v = both.env_action(1, [-0.5])
    assert a == 1 and np.array_equal(v, [-0.5])
