"""Action names and play keys (envs/keys.py): names from what the env states, keys derived from them and
overridden by --keys, one key per action, axis keys to each end of a Box range."""

from __future__ import annotations

import enum

import pytest

from worldloom.envs.keys import action_names, apply_keys, axis_spec, derive_keys, parse_keys


def test_keys_follow_from_action_names() -> None:
    atari = ["NOOP", "FIRE", "UP", "RIGHT", "LEFT", "DOWN", "UPRIGHT", "UPLEFT", "DOWNRIGHT", "DOWNLEFT", "UPFIRE"]
    keys = dict(zip(atari, derive_keys(atari)))
    assert keys["NOOP"] == () and keys["FIRE"] == (" ",)
    assert keys["UP"] == ("ArrowUp", "w") and keys["DOWN"] == ("ArrowDown", "s")
    assert keys["LEFT"] == ("ArrowLeft", "a") and keys["RIGHT"] == ("ArrowRight", "d")
    assert (keys["UPLEFT"], keys["UPRIGHT"], keys["DOWNLEFT"], keys["DOWNRIGHT"]) == (("q",), ("e",), ("z",), ("c",))
    assert keys["UPFIRE"] == ()  # id 10: no digit left, no key (a button still plays it)
    miniworld = ["turn_left", "turn_right", "move_forward", "move_back", "pickup"]
    assert derive_keys(miniworld) == (("ArrowLeft", "a"), ("ArrowRight", "d"), ("ArrowUp", "w"), ("ArrowDown", "s"), ("4",))
    # one key, one action: the second "up" gets nothing rather than a key the player would give to one of them
    assert derive_keys(["up", "forward"]) == (("ArrowUp", "w"), ())


def test_keys_override_parsing_and_errors() -> None:
    assert parse_keys("FIRE=space,UP=ArrowUp|W,NOOP=") == {"FIRE": [" "], "UP": ["ArrowUp", "w"], "NOOP": []}
    assert parse_keys('{"FIRE": [" ", "f"], "UP": "ArrowUp", "COMMA": ","}') == {"FIRE": [" ", "f"], "UP": ["ArrowUp"], "COMMA": [","]}
    for bad, msg in [("FIRE", "expected NAME=KEY"), ("FIRE=arrowup", "not a DOM KeyboardEvent.key"),
                     ("FIRE=a,UP=a", "given to both"), ("FIRE=a,FIRE=b", "given twice"), ("{1}", "not valid JSON"),
                     ('["FIRE"]', "expected NAME=KEY"), ('{"FIRE": 3}', "expected a key or a list")]:
        with pytest.raises(ValueError, match=msg):
            parse_keys(bad)
    names = ("NOOP", "FIRE", "RIGHT", "LEFT")
    keys = apply_keys(names, derive_keys(names), parse_keys("fire=ArrowRight,NOOP=n"), "gym:X")
    # names match case-blind when unambiguous; the overriding key is taken from RIGHT
    assert keys == (("n",), ("ArrowRight",), ("d",), ("ArrowLeft", "a"))
    with pytest.raises(ValueError, match="gym:X: --keys: no action named 'JUMP'; its actions are NOOP, FIRE"):
        apply_keys(names, derive_keys(names), {"JUMP": ["j"]}, "gym:X")


class _Env:
    """An env as action_names sees it: only ``unwrapped`` and what it states there."""

    def __init__(self, **attrs) -> None:
        self.unwrapped = type("U", (), attrs)()


def test_action_names_come_from_what_the_env_states_and_fall_back_whole() -> None:
    assert action_names(_Env(get_action_meanings=lambda self: ["NOOP", "FIRE"]), 2) == ("NOOP", "FIRE")

    class Actions(enum.IntEnum):
        left, right, forward = 0, 1, 2

    assert action_names(_Env(actions=Actions), 2, start=1) == ("right", "forward")  # enum values are the env's ids
    assert action_names(_Env(action_names=["a", "b", "c"]), 3) == ("a", "b", "c")
    # a source naming the wrong number of actions, or naming two alike, is not trusted half-way
    assert action_names(_Env(action_names=["a", "b"]), 3) == ("action_0", "action_1", "action_2")
    assert action_names(_Env(action_names=["a", "a"]), 2) == ("action_0", "action_1")

    def broken(self):
        raise RuntimeError("no game loaded")

    assert action_names(_Env(get_action_meanings=broken), 1) == ("action_0",)


def test_axis_spec_keys_drive_the_first_two_axes_to_their_ends() -> None:
    spec = axis_spec([-2.0, 0.0, 0.0], [2.0, 1.0, 1.0], names=["steer", "gas", "brake"])
    assert spec.names == ("noop",) and [a.name for a in spec.axes] == ["steer", "gas", "brake"]
    assert spec.axes[0].keys == (("ArrowLeft", -2.0), ("ArrowRight", 2.0))
    assert spec.axes[1].keys == (("ArrowDown", 0.0), ("ArrowUp", 1.0))
    assert spec.axes[2].keys == ()  # AXIS_KEYS has keys for two axes only
    assert (spec.axes[0].low, spec.axes[0].high) == (-2.0, 2.0)



def test_axis_entries_rebind_keys_and_the_pointer() -> None:
    from worldloom.envs.keys import apply_spec_keys

    assert parse_keys("steer=ArrowLeft:-1|ArrowRight:1.5,FIRE=f") == {"steer": ["ArrowLeft:-1.0", "ArrowRight:1.5"],
                                                                       "FIRE": ["f"]}
    assert parse_keys('{"steer": [["a", -1], ["d", 1]]}') == {"steer": ["a:-1.0", "d:1.0"]}
    spec = axis_spec([-2.0, 0.0], [2.0, 1.0], names=["steer", "gas"])
    out = apply_spec_keys(spec, parse_keys("steer=MouseX:0.02|j:-2,gas=ArrowLeft:1"), "gym:Car")
    assert out.axes[0].keys == (("j", -2.0),) and (out.axes[0].mouse, out.axes[0].mouse_gain) == ("x", 0.02)
    assert out.axes[1].keys == (("ArrowLeft", 1.0),)  # ArrowLeft moved from steer to gas: one key, one binding
    assert out.axes[1].mouse == "" and out.names == spec.names
    with pytest.raises(ValueError, match="gym:Car: --keys: axis 'steer' follows both MouseX and MouseY"):
        apply_spec_keys(spec, parse_keys("steer=MouseX:1|MouseY:1"), "gym:Car")
    with pytest.raises(ValueError, match="'steer': give keys .* not both"):
        parse_keys("steer=a:1|b")
    with pytest.raises(ValueError, match="'steer': key 'a' is given twice, with different values"):
        parse_keys("steer=a:-1|a:1")
