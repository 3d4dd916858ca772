"""The ``worldloom`` CLI: a subprocess smoke run of the whole pipeline, help, errors, lazy import, DDP.

The smoke run is the real thing, tiny: collect -> train tokenizer -> train dynamics -> distill ->
train temporal-decoder -> generate -> eval -> bench, each as ``python -m worldloom.cli`` in a subprocess with one thread. Everything else reuses
its outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from worldloom.cli import COMMANDS, main

FRAME = 32  # small frames keep the smoke run short; the CLI takes sizes from the data
SPEED = {"precision": "int8", "vae_precision": "bf16", "compile": False}


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def wl(cwd: Path, *args: str, timeout: float = 120, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m worldloom.cli ARGS`` in ``cwd``; by default assert it exits 0."""
    p = subprocess.run([sys.executable, "-m", "worldloom.cli", *args], cwd=cwd, env=_env(), capture_output=True,
                       text=True, timeout=timeout)
    if ok:
        assert p.returncode == 0, f"worldloom {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the CLI end to end once; returns the work dir, outputs and per-stage seconds."""
    d = tmp_path_factory.mktemp("cli")
    times: dict[str, float] = {}
    out: dict[str, Any] = {"dir": d, "times": times}

    def stage(name: str, *args: str) -> subprocess.CompletedProcess[str]:
        t = time.perf_counter()
        p = wl(d, *args)
        times[name] = time.perf_counter() - t
        return p

    stage("collect", "collect", "arena", "--episodes", "2", "--steps", "24", "--frame-size", str(FRAME), "--out", "train")
    stage("collect_heldout", "collect", "arena", "--episodes", "1", "--steps", "24", "--frame-size", str(FRAME),
          "--seed", "100000", "--out", "held")
    stage("tokenizer", "train", "tokenizer", "--preset", "tiny", "--data", "train", "--heldout", "held", "--out", "tok",
          "--train-steps", "3")
    stage("tokenizer_ft", "train", "tokenizer", "--preset", "tiny", "--init", "tok", "--data", "held", "--out", "tok_ft",
          "--train-steps", "1", "--train-lr", "0", "--vae-detail-weight", "5")  # lr 0: the weights must be tok's
    stage("dynamics", "train", "dynamics", "--preset", "tiny", "--data", "train", "--tokenizer", "tok", "--out", "wm",
          "--train-steps", "3")
    stage("dynamics_place", "train", "dynamics", "--preset", "tiny", "--data", "train", "--tokenizer", "tok", "--out",
          "wm_place", "--train-steps", "2", "--recipe-memory", "place", "--recipe-memory-frames", "1")
    # The init carries serving defaults (as a recipe writes them); the fine-tune must keep them.
    shutil.copytree(d / "wm", d / "wm_fast")
    cfg = json.loads((d / "wm_fast" / "config.json").read_text())
    (d / "wm_fast" / "config.json").write_text(json.dumps({**cfg, "speed": SPEED}))
    stage("finetune", "train", "dynamics", "--preset", "tiny", "--init", "wm_fast", "--tokenizer", "wm", "--data", "held",
          "--out", "ft", "--train-steps", "1", "--train-lr", "0")  # lr 0: the weights must be wm's, loaded
    stage("distill", "distill", "--teacher", "wm", "--init", "ft", "--data", "train", "--out", "student", "--train-steps", "2",
          "--train-batch-size", "2", "--recipe-context", "2", "--recipe-rollout-min", "8", "--recipe-rollout-max", "10",
          "--recipe-student-steps", "2", "--sim-steps", "1")
    stage("generate_student", "generate", "--checkpoint", "student", "--data", "held", "--context", "4", "--frames", "6",
          "--out", "student.gif")
    stage("temporal_decoder", "train", "temporal-decoder", "--preset", "tiny", "--checkpoint", "student", "--data", "train",
          "--out", "student_td", "--train-steps", "2")
    stage("generate_td", "generate", "--checkpoint", "student_td", "--data", "held", "--context", "4", "--frames", "6",
          "--out", "student_td.gif")
    stage("generate", "generate", "--checkpoint", "wm", "--data", "held", "--context", "4", "--frames", "6",
          "--out", "x.gif", "--side-by-side")
    if (Path(__file__).parents[1] / "src/worldloom/eval/rollout.py").is_file():
        out["eval"] = stage("eval", "eval", "--checkpoint", "wm", "--data", "held", "--horizon", "8", "--episodes", "1",
                            "--json", "--out", "eval.json").stdout
    out["bench"] = stage("bench", "bench", "--checkpoint", "wm", "--frames", "30", "--json").stdout
    return out


def test_smoke_pipeline(pipeline: dict[str, Any]) -> None:
    import imageio.v3 as iio

    d: Path = pipeline["dir"]
    assert (d / "train" / "meta.json").is_file() and (d / "held" / "meta.json").is_file()
    tok = json.loads((d / "tok" / "config.json").read_text())
    assert tok["kind"] == "tokenizer" and tok["vae"]["frame_size"] == FRAME  # frame size taken from the data
    assert tok["train"]["steps"] == 3 and tok["vae"]["width"] == 16  # tiny preset, steps overridden
    wm = json.loads((d / "wm" / "config.json").read_text())
    assert wm["kind"] == "worldmodel"
    assert wm["dynamics"]["latent_size"] == FRAME // tok["vae"]["downsample"]  # from the tokenizer
    assert wm["dynamics"]["latent_channels"] == tok["vae"]["latent_channels"]
    assert wm["dynamics"]["n_actions"] == 5  # from the dataset's ActionSpec
    assert wm["sim"]["window"] + wm["sim"]["sink"] <= wm["dynamics"]["max_frames"]
    assert "worldloom train dynamics" in wm["recipe_cmd"]
    # Each checkpoint carries the training logs of every stage it was built from (the eval report plots them).
    from worldloom.checkpoint import train_logs

    assert set(train_logs(d / "tok")) == {"tokenizer"} and set(train_logs(d / "wm")) == {"tokenizer", "dynamics"}
    # a fine-tune's own log sits beside the one of the run it started from; the student started from the fine-tune
    assert set(train_logs(d / "ft")) == {"tokenizer", "dynamics", "dynamics-finetune"}
    assert set(train_logs(d / "student")) == {"tokenizer", "dynamics", "dynamics-finetune", "distill"}
    assert set(train_logs(d / "student_td")) == {"tokenizer", "dynamics", "dynamics-finetune", "distill", "temporal_decoder"}
    assert (d / "wm" / "train_log-dynamics.jsonl").read_bytes() == (d / "wm" / "run" / "log.jsonl").read_bytes()

    from safetensors.numpy import load_file

    tok_ft = json.loads((d / "tok_ft" / "config.json").read_text())
    tok = json.loads((d / "tok" / "config.json").read_text())
    assert tok_ft["init"] == "tok" and tok_ft["vae"] == {**tok["vae"], "detail_weight": 5.0}
    a, b = load_file(d / "tok" / "model.safetensors"), load_file(d / "tok_ft" / "model.safetensors")
    # the latent statistics are measured again on the new data; every trained weight is the init's
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a if "latent_" not in k)

    ft = json.loads((d / "ft" / "config.json").read_text())
    assert ft["dynamics"] == wm["dynamics"] and ft["init"]["path"] == "wm_fast" and ft["init"]["trained_steps"] == 3
    assert "speed" not in wm and ft["speed"] == SPEED  # the init's serving defaults survive the fine-tune
    a, b = load_file(d / "wm" / "model.safetensors"), load_file(d / "ft" / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a if k.startswith("dit."))

    student = json.loads((d / "student" / "config.json").read_text())
    assert student["kind"] == "worldmodel" and student["sim"]["steps"] == 1  # --sim-steps: the default it runs with
    assert student["distill"]["recipe"]["student_steps"] == 2
    assert student["distill"]["trained_steps"] == 2 and "worldloom distill" in student["recipe_cmd"]
    assert student["dynamics"] == wm["dynamics"] and iio.improps(d / "student.gif").shape[0] == 6
    assert student["distill"]["init"]["path"] == "ft" and student["distill"]["teacher"] == "wm"

    td = json.loads((d / "student_td" / "config.json").read_text())
    assert td["temporal_decoder"]["width"] == 8 and td["temporal_decoder_train"]["train"]["steps"] == 2
    assert td["dynamics"] == student["dynamics"] and td["sim"] == student["sim"]  # the world model itself is kept
    assert "worldloom train temporal-decoder" in td["temporal_decoder_train"]["recipe_cmd"]
    assert iio.improps(d / "student_td.gif").shape[0] == 6

    gif = d / "x.gif"
    assert gif.is_file()
    shape = iio.improps(gif).shape  # (T, H, W, 3): true | 2 px line | generated, upscaled 4x
    assert shape[0] == 6, shape
    assert shape[1:3] == (FRAME * 4, (2 * FRAME + 2) * 4), shape

    if "eval" in pipeline:
        ev = json.loads(pipeline["eval"])
        assert ev == json.loads((d / "eval.json").read_text())
        assert ev["n_episodes"] == 1 and len(ev["psnr"]["model"]) == 8 and "swap" in ev

    res = json.loads(pipeline["bench"])
    for key in ("fps", "latency_ms", "stages_ms", "rss_mb", "rss_growth_pct", "flatness_ratio", "full_window_frame"):
        assert key in res, key
    assert res["frames"] == 30 and res["fps"] > 0
    assert set(res["latency_ms"]) >= {"p50", "p95", "p99"}
    assert set(res["stages_ms"]) == {"denoise_ms", "cache_write_ms", "decode_ms"}
    assert set(res["rss_mb"]) >= {"frame_100", "frame_200", "full_window", "end"}
    assert res["rss_mb"]["frame_100"] is None and res["flatness_ratio"] is None  # too short to measure
    assert res["context_source"].startswith("arena")
    print("CLI stage seconds:", {k: round(v, 1) for k, v in pipeline["times"].items()})


def test_a_model_trained_with_memory_plays_with_it(pipeline: dict[str, Any]) -> None:
    import numpy as np

    import worldloom
    from worldloom.runtime.simulator import Simulator

    wm = json.loads((pipeline["dir"] / "wm_place" / "config.json").read_text())
    assert wm["recipe"]["memory"] == "place" and wm["sim"]["memory"] == "place" and wm["sim"]["memory_slots"] == 1
    model = worldloom.load(str(pipeline["dir"] / "wm_place"))
    sim = Simulator(model)
    sim.reset(np.zeros((4, FRAME, FRAME, 3), np.uint8), np.zeros(4, np.int64))
    sim.rollout(np.zeros(3, np.int64))
    assert sim.memory.name == "place" and sim.cache.mem == 1 and "place" in sim.cfg.context_policy()


def test_finetune_refuses_a_different_architecture(pipeline: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    d: Path = pipeline["dir"]
    assert main(["train", "dynamics", "--preset", "tiny", "--init", str(d / "wm"), "--tokenizer", str(d / "wm"),
                 "--data", str(d / "held"), "--out", str(d / "ft-bad"), "--dyn-dim", "48", "--train-steps", "1"]) == 2
    assert "dim: 32 vs 48" in capsys.readouterr().err  # the checkpoint's vs this run's
    assert not (d / "ft-bad" / "model.safetensors").exists()
    assert main(["train", "dynamics", "--preset", "tiny", "--init", str(d / "held"), "--tokenizer", str(d / "wm"),
                 "--data", str(d / "held"), "--out", str(d / "ft-bad")]) == 2
    assert "--init" in capsys.readouterr().err


@pytest.mark.parametrize("grow", [{"head_conv": 8}, {"pred": "warp"}, {"prev_frames": 2},
                                  {"pred": "warp", "head_conv": 8, "prev_frames": 2}, {"mem_copy": True}],
                         ids=lambda g: "+".join(g))
def test_finetune_grows_a_refiner_a_flow_head_or_a_stacked_frame_and_starts_where_it_was(pipeline: dict[str, Any],
                                                                                          grow: dict[str, Any]) -> None:
    """--init a 'delta' model without a refiner, and grow a refiner (--dyn-head-conv 8), a flow head (--dyn-pred
    warp), a second stacked frame (--dyn-prev-frames 2) or all three: each new part starts as no correction, no
    flow or an ignored input, so at lr 0 the grown model predicts exactly what its init did; the card records
    what grew. A memory copy gate (--dyn-mem-copy) changes nothing without memory frames either."""
    import torch

    import worldloom

    d: Path = pipeline["dir"]
    name = "ft-grown-" + "-".join(grow)
    flags = [a for k, v in grow.items() for a in ("--dyn-" + k.replace("_", "-"), *([] if v is True else [str(v)]))]
    assert main(["train", "dynamics", "--preset", "tiny", "--init", str(d / "wm"), "--tokenizer", str(d / "wm"),
                 "--data", str(d / "held"), "--out", str(d / name), *flags, "--train-steps", "1", "--train-lr", "0"]) == 0
    base, grown = worldloom.load(d / "wm"), worldloom.load(d / name)
    assert base.dit.cfg.pred == "delta" and base.dit.cfg.prev_frames == 1 and base.dit.cfg.head_conv == 0
    assert all(getattr(grown.dit.cfg, k) == v for k, v in grow.items()) and grown.config["init"]["grown"] == grow
    g = torch.Generator().manual_seed(0)
    c, s = base.dit.cfg.latent_channels, base.dit.cfg.latent_size
    x, t = torch.randn(1, 3, c, s, s, generator=g), torch.full((1, 3), 0.6)
    a = torch.zeros(1, 3, dtype=torch.long)
    with torch.no_grad():
        assert torch.allclose(base.dit(x, t, a), grown.dit(x, t, a), atol=1e-6)


def test_flow_snap_is_set_by_a_finetune_or_a_student_and_recorded(pipeline: dict[str, Any]) -> None:
    """flow_snap changes how a 'warp' head uses its flow, not its weights: a fine-tune may set it anew (the card
    records the change), and a student may take its own while its teacher's targets keep theirs."""
    import worldloom

    d: Path = pipeline["dir"]
    assert main(["train", "dynamics", "--preset", "tiny", "--init", str(d / "wm"), "--tokenizer", str(d / "wm"), "--data",
                 str(d / "held"), "--out", str(d / "ft-warp"), "--dyn-pred", "warp", "--train-steps", "1", "--train-lr", "0"]) == 0
    assert main(["train", "dynamics", "--preset", "tiny", "--init", str(d / "ft-warp"), "--tokenizer", str(d / "wm"), "--data",
                 str(d / "held"), "--out", str(d / "ft-snap"), "--dyn-pred", "warp", "--dyn-flow-snap", "0.5",
                 "--train-steps", "1", "--train-lr", "0"]) == 0
    snap = worldloom.load(d / "ft-snap")
    assert snap.dit.cfg.flow_snap == 0.5 and snap.config["init"]["changed"] == {"flow_snap": [0.0, 0.5]}
    assert main(["distill", "--teacher", str(d / "ft-warp"), "--data", str(d / "train"), "--out", str(d / "st-snap"),
                 "--train-steps", "1", "--train-batch-size", "2", "--recipe-context", "2", "--recipe-rollout-min", "8",
                 "--recipe-rollout-max", "8", "--recipe-flow-snap", "0.25"]) == 0
    assert worldloom.load(d / "st-snap").dit.cfg.flow_snap == 0.25 and worldloom.load(d / "ft-warp").dit.cfg.flow_snap == 0.0


def test_generate_with_named_actions_and_bad_names(pipeline: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    import imageio.v3 as iio

    d: Path = pipeline["dir"]
    out = d / "named.gif"
    assert main(["generate", "--checkpoint", str(d / "wm"), "--data", str(d / "held"), "--frames", "5",
                 "--actions", "right,right,4,down", "--out", str(out), "--steps", "1"]) == 0
    assert iio.improps(out).shape[:3] == (5, FRAME * 4, FRAME * 4)
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(d / "wm"), "--data", str(d / "held"), "--actions", "right,jump",
                 "--out", str(d / "bad.gif")]) == 2
    err = capsys.readouterr().err
    assert "--actions" in err and "'jump'" in err and len(err.strip().splitlines()) == 1
    assert not (d / "bad.gif").exists()


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c != "train"] + ["train", "train tokenizer", "train dynamics",
                                                                       "train temporal-decoder"])
def test_help(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    if cmd == "eval" and not (Path(__file__).parents[1] / "src/worldloom/eval/rollout.py").is_file():
        pytest.skip("eval is registered only once worldloom.eval.rollout exists")
    with pytest.raises(SystemExit) as e:
        main([*cmd.split(), "--help"])
    assert e.value.code == 0
    assert "usage: worldloom" in capsys.readouterr().out


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for c in ("collect", "import-videos", "train", "generate", "bench", "doctor"):
        assert c in out


def test_missing_checkpoint_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-checkpoint"
    p = wl(tmp_path, "bench", "--checkpoint", str(missing), "--frames", "3", ok=False)
    assert p.returncode == 2, p.stderr
    assert "no-such-checkpoint" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_a_device_this_machine_lacks_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.device_count() > 3:
        pytest.skip("this machine has a cuda:3")
    for cmd in (["bench", "--frames", "3"], ["eval", "--suite", "speed", "--speed-frames", "3"]):
        assert main([*cmd, "--checkpoint", "arena", "--device", "cuda:3"]) == 2
        err = capsys.readouterr().err
        assert "--device cuda:3" in err and "CUDA device" in err and len(err.strip().splitlines()) == 1


def test_user_errors_name_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collect", "atari", "--out", str(tmp_path / "d"), "--episodes", "1", "--steps", "3"]) == 2
    assert "ENV 'atari'" in capsys.readouterr().err
    assert main(["train", "tokenizer", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "t")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["train", "dynamics", "--data", str(tmp_path), "--tokenizer", "x", "--out", "y"]) == 2
    assert "meta.json" in capsys.readouterr().err  # an existing dir that is not a dataset


def test_import_worldloom_does_not_import_torch() -> None:
    code = ("import sys, worldloom, worldloom.cli; assert 'torch' not in sys.modules, 'torch imported'; "
            "print(worldloom.__version__); assert 'torch' not in sys.modules")
    p = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()


def test_lazy_public_api() -> None:
    import worldloom
    from worldloom.runtime.loading import load
    from worldloom.runtime.simulator import SimConfig, Simulator, WorldModel

    assert (worldloom.load, worldloom.Simulator, worldloom.SimConfig, worldloom.WorldModel) == (load, Simulator, SimConfig, WorldModel)
    with pytest.raises(AttributeError):
        worldloom.no_such_thing  # noqa: B018


@pytest.mark.timeout(180)
def test_ddp_train_tokenizer_torchrun(pipeline: dict[str, Any]) -> None:
    """Two gloo processes on CPU through torchrun run the same CLI code path and write one checkpoint."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    d: Path = pipeline["dir"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "worldloom.cli", "train", "tokenizer", "--preset", "tiny", "--data", "train", "--out", "tok-ddp",
           "--train-steps", "2", "--train-device", "cpu"]
    p = subprocess.run(cmd, cwd=d, env=_env(), capture_output=True, text=True, timeout=170)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (d / "tok-ddp" / "model.safetensors").is_file()
    assert json.loads((d / "tok-ddp" / "config.json").read_text())["kind"] == "tokenizer"
    log = [json.loads(line) for line in (d / "tok-ddp" / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]  # only rank 0 logs
    assert p.stdout.count("tokenizer -> ") == 1  # only rank 0 prints


@pytest.mark.timeout(240)
def test_fsdp_train_dynamics_torchrun(pipeline: dict[str, Any]) -> None:
    """The DiT sharded with FSDP2 over two gloo processes trains through the CLI, saves its state with DCP
    and exports one ordinary checkpoint that loads and generates."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    d: Path = pipeline["dir"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "worldloom.cli", "train", "dynamics", "--preset", "tiny", "--data", "train", "--tokenizer", "tok",
           "--out", "wm-fsdp", "--train-steps", "2", "--train-device", "cpu", "--train-parallel", "fsdp"]
    p = subprocess.run(cmd, cwd=d, env=_env(), capture_output=True, text=True, timeout=230)
    assert p.returncode == 0, p.stdout + p.stderr
    meta = json.loads((d / "wm-fsdp" / "run" / "train_state.json").read_text())
    assert meta["format"] == "dcp" and meta["world_size"] == 2
    cfg = json.loads((d / "wm-fsdp" / "config.json").read_text())
    assert cfg["train"]["parallel"] == "fsdp" and cfg["trained_steps"] == 2
    wl(d, "generate", "--checkpoint", "wm-fsdp", "--data", "held", "--context", "2", "--frames", "2", "--out", "fsdp.mp4")


def test_collect_like_a_checkpoint_takes_its_world(tiny_ckpt, tmp_path, capsys) -> None:
    from worldloom.data.format import Dataset

    cfg = json.loads((tiny_ckpt / "config.json").read_text())
    cfg["env_kwargs"] = {"view": 64, "world_size": 128, "n_balls": 6}
    (tiny_ckpt / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "like"
    assert main(["collect", "--like", str(tiny_ckpt), "--episodes", "1", "--steps", "4", "--out", str(out),
                 "--env-kwargs", '{"n_balls": 2}']) == 0
    ds = Dataset.open(out)
    assert ds.meta["env"] == "arena" and ds.meta["env_kwargs"]["world_size"] == 128 and ds.meta["env_kwargs"]["n_balls"] == 2
    assert ds[0].state["ball_pos"].shape[1:] == (2, 2)
    assert main(["collect", "phys2d", "--like", str(tiny_ckpt), "--episodes", "1", "--steps", "4", "--out", str(tmp_path / "x")]) == 2
    assert "differs from --like" in capsys.readouterr().err
    assert main(["collect", "--episodes", "1", "--steps", "4", "--out", str(tmp_path / "y")]) == 2
    assert "or --like CHECKPOINT" in capsys.readouterr().err


def test_play_with_a_broken_checkpoint_fails_before_serving(tiny_ckpt, capsys) -> None:
    cfg = json.loads((tiny_ckpt / "config.json").read_text())
    cfg["dynamics"]["dim"] = "256"
    (tiny_ckpt / "config.json").write_text(json.dumps(cfg))
    assert main(["play", "--checkpoint", str(tiny_ckpt), "--no-open", "--port", "8799"]) == 2
    out = capsys.readouterr()
    assert "http://" not in out.out  # no URL was printed: nothing was served
    err = [line for line in out.err.splitlines() if line.strip()]
    assert len(err) == 1 and "config.json:dynamics: field 'dim' must be an integer" in err[0], err
