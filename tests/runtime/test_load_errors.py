"""A broken checkpoint is refused at load with one error that names the file and the field or tensor."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from worldloom.checkpoint import CheckpointError
from worldloom.runtime.loading import load


def _edit_config(ckpt, fn):
    p = ckpt / "config.json"
    c = json.loads(p.read_text())
    fn(c)
    p.write_text(json.dumps(c))


def _edit_weights(ckpt, fn):
    p = ckpt / "model.safetensors"
    t = load_file(str(p))
    fn(t)
    save_file(t, str(p))


CONFIG_CASES = {
    "dim as a string": (lambda c: c["dynamics"].__setitem__("dim", "256"), r"config.json:dynamics: field 'dim' must be an integer"),
    "vae null": (lambda c: c.__setitem__("vae", None), r"config.json:vae: expected an object of VAEConfig fields"),
    "bool for an int": (lambda c: c["vae"].__setitem__("width", True), r"field 'width' must be an integer"),
    "NaN shift": (lambda c: c["sim"].__setitem__("shift", float("nan")), r"config.json:sim: field 'shift' must be a finite number"),
    "window 0": (lambda c: c["sim"].__setitem__("window", 0), r"config.json: sim window=0, sink=0: need window >= 1"),
    "window past max_frames": (lambda c: c["sim"].__setitem__("window", 99), r"config.json: sim window=99, sink=0: window \+ sink exceeds"),
    "3 action names for 5 actions": (lambda c: c["action_spec"].update(names=["a", "b", "c"], keys=[]),
                                     r"config.json: action_spec names 3 actions \['a', 'b', 'c'\], but dynamics.n_actions is 5"),
    "absurd dim": (lambda c: c["dynamics"].update(dim=2**20, heads=2), r"model.safetensors \(dit\): shape mismatch"),
    "unknown field": (lambda c: c["dynamics"].__setitem__("dimm", 3), r"unknown DynamicsConfig field\(s\) \['dimm'\]"),
    "missing dynamics": (lambda c: c.pop("dynamics"), r"config.json: missing field 'dynamics'"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_is_one_error_naming_file_and_field(tiny_ckpt, case):
    fn, pattern = CONFIG_CASES[case]
    _edit_config(tiny_ckpt, fn)
    with pytest.raises(CheckpointError, match=pattern):
        load(tiny_ckpt)


WEIGHT_CASES = {
    "int32 weights": (lambda t: t.update({k: v.to(torch.int32) for k, v in t.items() if k.startswith("dit.")}), "dtype mismatch"),
    "bool weights": (lambda t: t.update({k: v.bool() for k, v in t.items() if k.startswith("vae.")}), "dtype mismatch"),
    "NaN in a weight": (lambda t: next(v for k, v in t.items() if k.startswith("dit.") and v.is_floating_point()).fill_(float("nan")),
                        r"non-finite values \(NaN or inf\) in"),
}


@pytest.mark.parametrize("case", sorted(WEIGHT_CASES))
def test_bad_weights_are_one_error_naming_the_tensor(tiny_ckpt, case):
    fn, pattern = WEIGHT_CASES[case]
    _edit_weights(tiny_ckpt, fn)
    with pytest.raises(CheckpointError, match=r"model.safetensors \((vae|dit)\): " + pattern):
        load(tiny_ckpt)


def test_deeply_nested_config_is_one_error(tiny_ckpt):
    (tiny_ckpt / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match=r"config.json: JSON nested too deeply"):
        load(tiny_ckpt)
