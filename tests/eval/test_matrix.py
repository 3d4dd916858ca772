"""The speed matrix: one row per steps x precision, base row first, deltas against it; the CLI prints it."""

import json

import pytest

from worldloom.cli import main
from worldloom.eval.matrix import run_speed_matrix


def test_matrix_rows_and_deltas(tiny_ckpt):
    res = run_speed_matrix(tiny_ckpt, steps_list=(1, 2), precisions=("fp32", "bf16"), frames=3,
                           quality_episodes=1, causality_episodes=1, horizons=(2, 4))
    rows = res.metrics["rows"]
    assert [(r["steps"], r["precision"]) for r in rows] == [(2, "fp32"), (1, "fp32"), (1, "bf16"), (2, "bf16")]
    base = rows[0]
    assert base["speedup"] == pytest.approx(1.0) and base["d_psnr_h2"] == 0.0
    for r in rows:
        assert r["fps"] > 0 and r["latency_p95_ms"] > 0 and r["psnr_h4"] is not None
        assert r["d_psnr_h4"] == pytest.approx(r["psnr_h4"] - base["psnr_h4"])
        assert "ball_permanence_h1_4" in r and 0.0 <= r["walls_iou_h1_4"] <= 1.0  # the arena's objects (none seen here), walls
    assert len(res.tables[0].rows) == 4 and "walls iou h1 4 %" in res.tables[0].columns


def test_matrix_rejects_bad_grid(tiny_ckpt):
    with pytest.raises(ValueError, match="precisions"):
        run_speed_matrix(tiny_ckpt, precisions=("fp16",))
    with pytest.raises(ValueError, match="steps_list"):
        run_speed_matrix(tiny_ckpt, steps_list=(0,))


def test_bench_matrix_cli(tiny_ckpt, capsys):
    rc = main(["bench", "--checkpoint", str(tiny_ckpt), "--mode", "matrix", "--steps-list", "1", "--precisions",
               "int8", "--frames", "3", "--quality-episodes", "0", "--causality-episodes", "0", "--base-steps", "1",
               "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    rows = json.loads(out.out)["metrics"]["rows"]
    assert [(r["steps"], r["precision"]) for r in rows] == [(1, "fp32"), (1, "int8")]
    assert main(["bench", "--checkpoint", str(tiny_ckpt), "--mode", "matrix", "--compile-modes", "maybe"]) == 2


def test_matrix_against_another_base_checkpoint(tiny_ckpt, tmp_path):
    """A student's rows are compared with its teacher's many-step row; every grid row is the student's."""
    import shutil

    student = shutil.copytree(tiny_ckpt, tmp_path / "student")
    res = run_speed_matrix(student, steps_list=(1,), precisions=("fp32",), frames=2, quality_episodes=0,
                           causality_episodes=0, base_steps=1, base_checkpoint=tiny_ckpt)
    rows = res.metrics["rows"]
    assert [(r["checkpoint"], r["steps"]) for r in rows] == [(str(tiny_ckpt), 1), (str(student), 1)]
    assert res.metrics["base"]["checkpoint"] == str(tiny_ckpt)
