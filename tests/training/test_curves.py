"""``worldloom plot``: a run's log.jsonl drawn to a PNG; bad logs get one line naming file and line."""

from __future__ import annotations

import json

import pytest

from worldloom.cli import main
from worldloom.training.curves import plot_run, read_log


def _log(tmp_path, lines):
    d = tmp_path / "run"
    d.mkdir(parents=True)
    (d / "log.jsonl").write_text("".join(l + "\n" for l in lines))
    return d


def _rec(step):
    return json.dumps({"step": step, "lr": 1e-3 * step / 40, "elapsed_s": step * 2.0, "frames_per_s": 60 + step % 7,
                       "loss": 1.0 / step, "loss_first": 2.0 / step, "grad_norm": 0.1})


def test_plot_draws_a_png_and_skips_a_torn_last_line(tmp_path):
    from PIL import Image

    d = _log(tmp_path, [_rec(s) for s in range(25, 1001, 25)] + ['{"step": 1025, "lo'])
    assert len(read_log(d)) == 40
    out = plot_run(d)
    assert out == d / "curves.png"
    w, h = Image.open(out).size
    assert w > 3 * h  # four panels side by side


def test_a_bad_line_names_the_file_and_line(tmp_path):
    d = _log(tmp_path, [_rec(25), "not json", _rec(50)])
    with pytest.raises(ValueError, match=r"log.jsonl:2: not a JSON line"):
        read_log(d)
    d2 = _log(tmp_path / "b", [_rec(25), json.dumps({"loss": 1.0}), _rec(50)])
    with pytest.raises(ValueError, match=r"log.jsonl:2: expected an object with an integer 'step'"):
        read_log(d2)


def test_cli_plot(tmp_path, capsys):
    d = _log(tmp_path, [_rec(s) for s in (25, 50, 75)])
    assert main(["plot", str(d / "log.jsonl"), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000 and str(tmp_path / "c.png") in capsys.readouterr().out
    assert main(["plot", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "no training log" in err and err.count("\n") == 1
