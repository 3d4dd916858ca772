"""DDP and FSDP2 under torchrun (two gloo processes on CPU) train as one process does, and a DCP
state saved by two processes resumes under one bit for bit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worldloom.checkpoint import CheckpointError, load_weights

HERE = Path(__file__).parent
dist = pytest.importorskip("torch.distributed")
pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="no gloo")
STEPS = 4


def torchrun(run_dir: Path, mode: str, until: int = STEPS, resume: bool = False, ok: bool = True) -> str:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "dist_worker.py"), str(run_dir), mode, str(STEPS), str(until), "1", "1" if resume else "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    assert (p.returncode == 0) == ok, p.stdout + p.stderr
    return p.stdout + p.stderr


def one_process(run_dir: Path, until: int = STEPS, resume: bool = False):
    sys.path.insert(0, str(HERE))
    try:
        from dist_worker import train
    finally:
        sys.path.remove(str(HERE))
    return train(run_dir, "ddp", STEPS, until, 2, resume)  # accum 2: the two processes' batches in one


def losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())}


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("one")
    one_process(d)
    return d


@pytest.mark.timeout(200)
def test_ddp_on_two_processes_trains_as_one_process(reference, tmp_path) -> None:
    torchrun(tmp_path, "ddp")
    ref, got = losses(reference), losses(tmp_path)
    assert got.keys() == ref.keys() == set(range(1, STEPS + 1))
    assert got == pytest.approx(ref, rel=1e-5)
    assert got[STEPS] < got[1]  # it trained
    assert_close(load_weights(tmp_path / "ema.safetensors"), load_weights(reference / "ema.safetensors"))


@pytest.mark.timeout(400)
def test_fsdp_trains_as_one_process_and_its_dcp_state_resumes_on_one_bit_for_bit(reference, tmp_path) -> None:
    fs, solo = tmp_path / "fsdp", tmp_path / "solo"
    torchrun(fs, "fsdp", until=2)  # an interrupted two-process session: sharded state at step 2
    meta = json.loads((fs / "train_state.json").read_text())
    assert meta["format"] == "dcp" and meta["world_size"] == 2 and meta["step"] == 2
    assert sorted(p.name for p in (fs / meta["weights"]).glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    shutil.copytree(fs, solo)
    torchrun(fs, "fsdp", resume=True)  # resumed on two processes, to the end
    assert losses(fs) == pytest.approx(losses(reference), rel=1e-5)
    assert_close(load_weights(fs / "ema.safetensors"), load_weights(reference / "ema.safetensors"))
    tr = one_process(solo, resume=True)  # the same state, resharded onto one process
    assert tr.step == STEPS
    assert losses(solo)[3] == losses(fs)[3]  # the next step's loss, bit for bit
    assert losses(solo)[4] == pytest.approx(losses(fs)[4], rel=1e-5)
    assert json.loads((solo / "train_state.json").read_text())["format"] == "safetensors"  # one process: one file


def test_a_torn_dcp_state_is_refused(reference, tmp_path) -> None:
    """The manifest names the DCP directory and its metadata's hash: a changed or missing one is refused."""
    from worldloom.training.parallel import DCP_META

    d = tmp_path / "run"
    shutil.copytree(reference, d)
    meta = json.loads((d / "train_state.json").read_text())
    dcp_dir = d / "train_state-00000004.dcp"
    dcp_dir.mkdir()
    (dcp_dir / DCP_META).write_bytes(b"not the metadata")
    meta.update(weights=dcp_dir.name, format="dcp", sha256="0" * 64)
    (d / "train_state.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="DCP metadata .* differs"):
        one_process(d, resume=True)
    (dcp_dir / DCP_META).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        one_process(d, resume=True)


@pytest.mark.timeout(200)
def test_a_single_file_state_is_not_resumed_under_fsdp(reference, tmp_path) -> None:
    """A one-process (or DDP) state holds whole tensors; FSDP says how to go on instead of guessing a sharding."""
    d = tmp_path / "run"
    shutil.copytree(reference, d)
    assert json.loads((d / "train_state.json").read_text())["format"] == "safetensors"
    out = torchrun(d, "fsdp", resume=True, ok=False)
    assert "a single-file training state" in out and "resume it with --train-parallel ddp" in out
    assert json.loads((d / "train_state.json").read_text())["format"] == "safetensors"  # nothing lost
