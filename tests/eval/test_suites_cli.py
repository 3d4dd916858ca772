"""`worldloom eval --suite ... --report DIR` on a tiny checkpoint, and the suite registry's errors."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from worldloom.cli import main
from worldloom.eval import suites as suites_mod
from worldloom.eval.suites import (
    DEFAULT_SUITES,
    SuiteError,
    SuiteSpec,
    parse_suites,
    run_suites,
)


def test_eval_causality_speed_report(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    rep = tmp_path / "report"
    rc = main(["eval", "--checkpoint", str(tiny_ckpt), "--suite", "causality,speed", "--report", str(rep),
               "--causality-episodes", "2", "--causality-steps", "2", "--speed-frames", "3", "--steps", "1", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = json.loads(captured.out)  # one JSON object on stdout, progress on stderr
    assert list(out["suites"]) == ["causality", "speed"] and out["errors"] == {}
    assert out["settings"]["suites"] == ["causality", "speed"] and out["settings"]["sim_overrides"] == {"steps": 1}
    assert out["suites"]["causality"]["metrics"]["settings"]["episodes"] == 2
    assert out["suites"]["causality"]["metrics"]["settings"]["sim"]["steps"] == 1
    assert out["suites"]["speed"]["metrics"]["bench"]["frames"] == 3
    assert json.loads((rep / "results.json").read_text())["suites"].keys() == out["suites"].keys()
    page = (rep / "index.html").read_text()
    assert "causality" in page and "speed" in page and "data:image/png;base64," in page
    assert len(list((rep / "media").glob("*.gif"))) == 2  # two causality contexts' videos
    assert "eval: causality done" in captured.err


def test_human_summary(tiny_ckpt: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["eval", "--checkpoint", str(tiny_ckpt), "--suite", "persistence", "--ks", "2", "--probes", "1",
                 "--record"]) == 0
    out = capsys.readouterr().out
    assert "| persistence |" in out and "psnr_k2" in out and "Revisit frames against the simulator" in out
    recorded = json.loads((tiny_ckpt / "config.json").read_text())["metrics"]["suites"]["persistence"]
    assert recorded["context_window"] == 6 and "psnr_k2" in recorded  # headline metrics kept with the checkpoint
    assert "## Measured: suites" in (tiny_ckpt / "README.md").read_text()


def test_cli_errors_name_the_suite(tiny_ckpt: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    assert main(["eval", "--checkpoint", str(tiny_ckpt), "--suite", "causality,telepathy"]) == 2
    err = capsys.readouterr().err
    assert "'telepathy'" in err and "known:" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--checkpoint", str(tiny_ckpt), "--suite", "persistence", "--ks", "1,8"]) == 2
    assert "--ks" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tiny_ckpt), "--suite", "revisits", "--data", str(tiny_ckpt), "--gaps", "1"]) == 2
    assert "--gaps '1': need distinct integers >= 2" in capsys.readouterr().err
    monkeypatch.setitem(suites_mod.SUITES, "ghost", SuiteSpec("worldloom.eval.no_such_suite", "run_ghost", "x"))
    assert main(["eval", "--checkpoint", str(tiny_ckpt), "--suite", "speed,ghost", "--speed-frames", "2"]) == 2
    err = capsys.readouterr().err
    assert "suite 'ghost'" in err and "worldloom.eval.no_such_suite" in err and "eval: speed done" not in err
    assert main(["eval", "--checkpoint", str(tiny_ckpt), "--suite", "physics",
                 "--physics-checkpoint", str(tiny_ckpt.parent / "no-phys2d")]) == 2
    assert "--physics-checkpoint" in capsys.readouterr().err


def test_failed_suite_is_reported_not_skipped(tiny_ckpt: Path, tiny_world, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch):
    def boom(model, *, progress=False):
        raise RuntimeError("the probe broke")

    monkeypatch.setattr(suites_mod, "run_boom", boom, raising=False)
    monkeypatch.setitem(suites_mod.SUITES, "boom", SuiteSpec("worldloom.eval.suites", "run_boom", "fails"))
    rep = tmp_path / "rep"
    with pytest.raises(SystemExit) as e:
        main(["eval", "--checkpoint", str(tiny_ckpt), "--suite", "boom,speed", "--speed-frames", "2", "--report", str(rep)])
    assert e.value.code == 1
    captured = capsys.readouterr()
    assert "suite 'boom' failed: RuntimeError: the probe broke" in captured.err
    assert "| boom | failed |" in captured.out and "| speed |" in captured.out  # the others still ran
    data = json.loads((rep / "results.json").read_text())
    assert data["errors"] == {"boom": "RuntimeError: the probe broke"} and list(data["suites"]) == ["speed"]
    with pytest.raises(SuiteError, match="suite 'boom' failed"):
        run_suites(tiny_world, ["boom"])  # without keep_going: raised, naming the suite


def test_registry(tiny_world):
    assert parse_suites("all") == list(DEFAULT_SUITES)
    assert parse_suites(" speed, causality,speed ") == ["speed", "causality"]
    with pytest.raises(SuiteError, match="suite 'causality': unknown option"):
        run_suites(tiny_world, ["causality"], options={"causality": {"horizon": 3}})
    with pytest.raises(SuiteError, match="suite 'rollout': needs a held-out dataset"):
        run_suites(tiny_world, ["rollout"])
    tiny_world.config = {**tiny_world.config, "env": "phys2d"}
    with pytest.raises(SuiteError, match="suite 'persistence': needs a checkpoint trained on 'arena'"):
        run_suites(tiny_world, ["speed", "persistence"])


def test_cli_defaults_match_the_suites():
    """The CLI's defaults are the suites' own: one set of fixed settings, comparable across commits."""
    from worldloom.cli import build_parser
    from worldloom.eval.causality import run_causality
    from worldloom.eval.persistence import run_persistence
    from worldloom.eval.speed import run_speed

    a = build_parser(["eval"]).parse_args(["eval", "--checkpoint", "x"])
    d = lambda f, k: inspect.signature(f).parameters[k].default
    assert (a.causality_episodes, a.causality_steps) == (d(run_causality, "episodes"), d(run_causality, "steps"))
    assert tuple(int(k) for k in a.ks.split(",")) == d(run_persistence, "ks") and a.probes == d(run_persistence, "probes")
    assert a.speed_frames == d(run_speed, "frames") and a.suite is None and a.physics_checkpoint is None
    from worldloom.eval.revisits import run_revisits

    assert tuple(int(g) for g in a.gaps.split(",")) == d(run_revisits, "gaps")
    assert (a.episodes, a.context, a.batch) == tuple(d(run_revisits, k) for k in ("episodes", "context", "batch"))


def test_rollout_suite_wraps_the_heldout_eval(tiny_world, tmp_path: Path):
    from worldloom.data.collect import collect

    data = collect("arena", tmp_path / "held", episodes=2, steps=10, seed=100000, progress=False)
    (res,), errors = run_suites(tiny_world, ["rollout"], data=data,
                                options={"rollout": {"horizon": 4, "episodes": 2, "batch": 2}})
    assert errors == {} and res.name == "rollout" and res.seconds > 0
    m = res.to_json()["metrics"]
    assert m["detail"]["n_episodes"] == 2 and len(m["detail"]["psnr"]["model"]) == 4
    assert m["psnr_mean"] == m["detail"]["psnr_mean"]["model"] and m["follow_ceiling"] >= 0.99
    assert [len(p["x"]) for p in res.to_json()["plots"]] == [4, 4, 4, 4]  # PSNR, SSIM, object permanence, walls
    assert res.tables[-2].columns[:2] == ["kind", "frames"] and "landmark_permanence_h1_4" in m
    assert res.tables[-1].title.startswith("Walls") and m["walls_iou_h1_4"] == m["detail"]["structure"]["model"]["iou_h1_4"]
    with pytest.raises(ValueError, match="--data"):  # a dataset no selected suite uses is a mistake
        run_suites(tiny_world, ["speed"], data=data)


def test_data_with_report_runs_the_rollout_suite(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from worldloom.data.collect import collect

    data = collect("arena", tmp_path / "held", episodes=1, steps=8, seed=100000, progress=False)
    rep = tmp_path / "rep"
    assert main(["eval", "--checkpoint", str(tiny_ckpt), "--data", str(data), "--horizon", "3", "--episodes", "1",
                 "--report", str(rep), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["suites"]) == ["rollout"] and out["settings"]["data"] == str(data)
    assert (rep / "index.html").is_file() and "PSNR against horizon" in (rep / "index.html").read_text()
