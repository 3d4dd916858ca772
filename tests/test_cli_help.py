"""A --help a person can read: the common options and examples first, every config field under
--help-all; fixed-value options are choices (on the command line and in config files)."""

from __future__ import annotations

import re

import pytest

from worldloom.cli import main
from worldloom.config import from_dict
from worldloom.training.dynamics import DynamicsRecipe


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    assert e.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("cmd", [("train", "dynamics"), ("train", "tokenizer"), ("distill",)])
def test_help_shows_about_ten_options_and_examples(capsys, cmd):
    brief = _help(capsys, *cmd, "--help")
    full = _help(capsys, *cmd, "--help-all")
    n_brief = len(re.findall(r"^  --", brief, re.M))
    n_full = len(re.findall(r"^  --", full, re.M))
    assert n_brief <= 14 < n_full, (n_brief, n_full)
    assert "examples:" in brief and "--help-all" in brief and "--train-steps" in brief
    assert "--train-ema-decay" not in brief and "--train-ema-decay" in full


def test_help_all_lists_model_fields(capsys):
    full = _help(capsys, "train", "dynamics", "--help-all")
    assert "--dyn-dim" in full and "--recipe-t-shift" in full and "--sim-window" in full
    assert "{v,x0}" in full  # a fixed set of values is a choice


def test_a_value_outside_the_choices_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "dynamics", "--data", "d", "--tokenizer", "t", "--out", "o", "--recipe-loss", "mse"])
    assert e.value.code == 2 and "invalid choice: 'mse'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"run.json: field 'loss' must be one of \['v', 'x0'\], got \"mse\""):
        from_dict(DynamicsRecipe, {"loss": "mse"}, where="run.json")


def test_collect_has_defaults(tmp_path):
    from worldloom.data.format import Dataset

    assert main(["collect", "arena", "--out", str(tmp_path / "d"), "--episodes", "1"]) == 0
    assert Dataset.open(tmp_path / "d").n_frames == 300  # --steps defaults to 300
