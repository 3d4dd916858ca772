"""``make gpu-check``'s script runs every stage end to end at toy size on CPU, so it works the day a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_gpu_check_dry_run_writes_every_stage(tmp_path) -> None:
    out = tmp_path / "gc.json"
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--device", "cpu", "--tiny", "--out", str(out),
                        "--work", str(tmp_path / "work")], capture_output=True, text=True, timeout=290,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    rep = json.loads(out.read_text())
    stages = ("gpu_tests", "train_gpu_small", "speed_128px", "untrained_256px", "speed_256px", "ws_128px", "ws_256px")
    assert all(rep[s]["ok"] for s in stages), {s: rep[s].get("error") for s in stages}
    assert rep["train_gpu_small"]["steps"] == 3 and rep["speed_128px"]["rows"][0]["fps"] > 0
    assert rep["ws_256px"]["actions_answered"] == 30
    import torch

    if not torch.cuda.is_available():  # the real run refuses a machine without CUDA, saying what to do
        p = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--out", str(out)], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode != 0 and "--device cpu --tiny" in p.stderr
