"""A fresh install (``make test-all``: building an ~80 MB wheel takes about a minute): the built wheel,
installed into a throwaway venv that borrows only this machine's torch and other dependencies,
finds its bundled world and rolls it out from outside the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
import numpy as np
import worldloom
m = worldloom.load("arena")
sim = worldloom.Simulator(m)
sim.reset(np.zeros((4, 64, 64, 3), np.uint8), [0, 0, 0, 0])
frames = np.stack([sim.step(a) for a in (1, 1, 3, 0)])
print(json.dumps({"module": worldloom.__file__, "model": str(m.path), "shape": list(frames.shape),
                  "version": worldloom.__version__, "physics": str(worldloom.load("phys2d").path)}))
"""


def test_the_wheel_installs_and_plays_outside_the_tree(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = dist.glob("worldloom-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "worldloom/checkpoints/arena/model.safetensors" in names
    # Every checkpoint in the tree is one that play, the tests or the eval suites load, and all of them ship.
    shipped = {n.split("/")[2] for n in names if n.startswith("worldloom/checkpoints/") and n.endswith("/model.safetensors")}
    assert shipped == {d.name for d in (ROOT / "src" / "worldloom" / "checkpoints").iterdir() if d.is_dir()}

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True)
    # The machine's torch (and numpy, gymnasium...) without its editable worldloom: a plain path entry
    # after the venv's own site-packages (a path added by a .pth file has its own .pth files ignored).
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "machine_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WORLDLOOM_CHECKPOINTS")}
    out = subprocess.run([str(py), "-c", SCRIPT], check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["module"].startswith(str(venv)) and got["model"].startswith(str(venv)), got
    assert got["physics"].startswith(str(venv)) and got["shape"] == [4, 64, 64, 3] and got["version"] == "0.1.0", got
    cli = subprocess.run([str(venv / "bin" / "worldloom"), "--version"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert cli.returncode == 0 and "0.1.0" in cli.stdout + cli.stderr
