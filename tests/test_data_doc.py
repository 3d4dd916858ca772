"""docs/DATA.md's worked examples run as written, at tiny size: every `worldloom ...` command of its bash
blocks (episodes and steps cut down, outputs moved to a temporary directory) and its collect and import_videos
examples in Python, and the adding-an-env block's registration with a toy `MyGameEnv`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from worldloom.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "DATA.md"
# Commands whose inputs a reader brings (their own env module, a downloaded dataset): shown, not runnable here.
USER_INPUT = ("my_package", "~/")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def _commands() -> list[str]:
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("   #")[0].strip()  # a trailing comment
            if line.startswith("worldloom ") and not any(u in line for u in USER_INPUT):
                out.append(line)
    return out


def _tiny(argv: list[str], tmp: Path) -> list[str]:
    """The command at test size: 1 episode of 6 frames, every path under ``tmp``."""
    out, it = [], iter(argv)
    for a in it:
        if a in ("--episodes", "--steps"):
            out += [a, "1" if a == "--episodes" else "6"]
            next(it)
        elif a in ("--out",):
            out += [a, str(tmp / next(it))]
        else:
            out.append(a)
    return out


def test_the_page_has_commands_to_run() -> None:
    cmds = _commands()
    assert any(c.startswith("worldloom collect gym:ALE/Pong-v5") for c in cmds)
    assert any("export-lerobot" in c for c in cmds)


@pytest.mark.parametrize("cmd", _commands())
def test_bash_commands_run(cmd: str, tmp_path: Path) -> None:
    argv = shlex.split(cmd)[1:]
    if argv[0] == "collect" and argv[1].startswith("gym:"):
        pytest.importorskip("gymnasium")
        if "ALE/" in argv[1]:
            pytest.importorskip("ale_py")
        if "MiniGrid" in argv[1]:
            pytest.importorskip("minigrid")
        if argv[1] in ("gym:CartPole-v1", "gym:Pendulum-v1"):
            pytest.importorskip("pygame")
    if argv[0] == "export-lerobot":  # its input is the page's Pendulum dataset (a Box env's axes): make a tiny one
        pytest.importorskip("pyarrow")
        pytest.importorskip("av")
        pytest.importorskip("pygame")
        assert argv[1] == "data/pendulum"
        assert main(["collect", "gym:Pendulum-v1", "--episodes", "1", "--steps", "6", "--out", str(tmp_path / argv[1])]) == 0
        argv = [argv[0], str(tmp_path / argv[1])] + argv[2:]
    assert main(_tiny(argv, tmp_path)) == 0, cmd


def test_python_collect_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collect example, shrunk: the page's own calls with its arguments, 1 episode of 6 frames."""
    from worldloom.data import Dataset

    block = next(b for b in _blocks("python") if b.startswith("from worldloom.data import collect"))
    code = re.sub(r"episodes=\d+", "episodes=1", re.sub(r"steps=\d+", "steps=6", block))
    if "CartPole" in code:
        pytest.importorskip("gymnasium")
        pytest.importorskip("pygame")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})
    assert len(Dataset.open(tmp_path / "data/arena")) == 1 and Dataset.open(tmp_path / "data/cartpole").n_frames == 6


def test_python_import_videos_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The import example as written, on a recordings/ folder holding one GIF and the page's own CSV log."""
    iio = pytest.importorskip("imageio.v3")
    import numpy as np

    from worldloom.data import Dataset

    block = next(b for b in _blocks("python") if "import_videos(" in b)
    log = re.search(r"```\n\s*(frame,action\n.*?)```", DOC.read_text(), flags=re.S).group(1)  # the CSV example
    rec = tmp_path / "recordings"
    rec.mkdir()
    frames = np.stack([np.full((24, 32, 3), 20 * i, np.uint8) for i in range(8)])
    iio.imwrite(rec / "run.gif", frames, duration=100, loop=0)
    (rec / "run.csv").write_text("\n".join(line.strip() for line in log.strip().splitlines()) + "\n")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, str(DOC), "exec"), {})
    ds = Dataset.open(tmp_path / "data/recordings")
    assert ds.meta["frame_shape"] == [64, 64, 3] and ds[0].len == 8
    assert ds[0].actions.tolist() == [0, 4, 4, 0, 0, 0, 0, 0]  # the log's 1,right / 2,right / 7,0 under the page's names


def test_python_registration_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The adding-an-env block as written (its defaults cut to 1 episode of 6 frames), with a toy MyGameEnv
    that states no actions of its own: the registration's names, keys and env kwargs reach the dataset."""
    import gymnasium
    import numpy as np

    from worldloom.data import Dataset
    from worldloom.envs.registry import _ENTRIES

    class MyGameEnv(gymnasium.Env):
        metadata = {"render_fps": 10}

        def __init__(self, frame_size: int = 64, level: int = 1) -> None:
            self.size, self.level = frame_size, level
            self.action_space = gymnasium.spaces.Discrete(3)
            self.observation_space = gymnasium.spaces.Box(0, 255, (frame_size, frame_size, 3), np.uint8)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.full((self.size, self.size, 3), self.level, np.uint8), {}

        def step(self, action):
            return np.full((self.size, self.size, 3), self.level * int(action), np.uint8), 0.0, False, False, {}

    block = next(b for b in _blocks("python") if "register(EnvEntry(" in b)
    code = block.replace('"steps": 200', '"steps": 6').replace('"episodes": 50', '"episodes": 1')
    assert code != block, "the example's defaults moved: update this test's shrinking"
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(code, str(DOC), "exec"), {"MyGameEnv": MyGameEnv})
    finally:
        _ENTRIES.pop("mygame", None)
    ds = Dataset.open(tmp_path / "data/mygame")
    assert ds.lengths.tolist() == [6] and ds.meta["env_kwargs"] == {"frame_size": 64, "level": 3}
    assert ds.action_spec.names == ("noop", "jump", "duck") and ds.action_spec.keys[1] == (" ", "ArrowUp")
