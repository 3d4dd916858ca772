"""Corrupt checkpoints and datasets through the CLI: each is exit 2 and one line naming the file at fault.

The checkpoint cases are those of ``tests/runtime/test_load_errors.py`` (imported, not repeated), run
through ``worldloom eval``; the dataset cases corrupt a tiny collected dataset the same command reads.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from worldloom.cli import main

_spec = importlib.util.spec_from_file_location("load_errors", Path(__file__).parent / "runtime" / "test_load_errors.py")
_le = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_le)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from worldloom.data.collect import collect

    return Path(collect("arena", tmp_path_factory.mktemp("cf") / "ds", episodes=2, steps=12, seed=3, progress=False))


def _eval(ck: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    code = main(["eval", "--checkpoint", str(ck), "--data", str(data), "--episodes", "2", "--horizon", "4", "--threads", "1"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]
    assert code == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err


@pytest.mark.parametrize("case", sorted(_le.CONFIG_CASES))
def test_corrupt_checkpoint_config(tiny_ckpt, clean_data, case, capsys) -> None:
    fn, _ = _le.CONFIG_CASES[case]
    _le._edit_config(tiny_ckpt, fn)
    line = _eval(tiny_ckpt, clean_data, capsys)[0]
    assert "config.json" in line or "model.safetensors" in line  # an absurd size is a shape mismatch with the weights


@pytest.mark.parametrize("case", sorted(_le.WEIGHT_CASES))
def test_corrupt_checkpoint_weights(tiny_ckpt, clean_data, case, capsys) -> None:
    fn, _ = _le.WEIGHT_CASES[case]
    _le._edit_weights(tiny_ckpt, fn)
    assert "model.safetensors" in _eval(tiny_ckpt, clean_data, capsys)[0]


def _meta(d: Path, fn) -> None:
    m = json.loads((d / "meta.json").read_text())
    fn(m)
    (d / "meta.json").write_text(json.dumps(m))


def _swap(m: dict) -> None:
    n = m["action_spec"]["names"]
    n[1], n[2] = n[2], n[1]


EP = Path("episodes") / "000000"
DATA_CASES = {
    "checkpoint truncated": (None, "model.safetensors"),
    "meta not JSON": (lambda d: (d / "meta.json").write_text("{not json"), "meta.json"),
    "meta nested deep": (lambda d: (d / "meta.json").write_text("[" * 100_000 + "]" * 100_000), "meta.json"),
    "meta a list": (lambda d: (d / "meta.json").write_text("[1, 2]"), "meta.json"),
    "meta fps a string": (lambda d: _meta(d, lambda m: m.__setitem__("fps", "15")), "meta.json"),
    "meta frame_shape wrong": (lambda d: _meta(d, lambda m: m.__setitem__("frame_shape", [8, 8])), "meta.json"),
    "meta newer version": (lambda d: _meta(d, lambda m: m.__setitem__("version", 99)), "meta.json"),
    "action names swapped": (lambda d: _meta(d, _swap), "meta.json"),
    "three action names": (lambda d: _meta(d, lambda m: m["action_spec"].update(names=["a", "b", "c"], keys=[])), "meta.json"),
    "missing episode dir": (lambda d: shutil.rmtree(d / "episodes" / "000001"), "000001"),
    "frames truncated": (lambda d: (d / EP / "frames.npy").write_bytes((d / EP / "frames.npy").read_bytes()[:-100]), "frames.npy"),
    "frames wrong dtype": (lambda d: np.save(d / EP / "frames.npy", np.zeros((12, 64, 64, 3), np.float32)), "frames.npy"),
    "frames wrong shape": (lambda d: np.save(d / EP / "frames.npy", np.zeros((12, 32, 32, 3), np.uint8)), "frames.npy"),
    "actions garbage": (lambda d: (d / EP / "actions.npy").write_bytes(b"\x00garbage" * 16), "actions.npy"),
    "actions pickled": (lambda d: np.save(d / EP / "actions.npy", np.array([{"x": 1}] * 12, dtype=object), allow_pickle=True), "actions.npy"),
    "actions out of range": (lambda d: np.save(d / EP / "actions.npy", np.full(12, 9, np.int64)), "actions"),
    "actions too short": (lambda d: np.save(d / EP / "actions.npy", np.zeros(5, np.int64)), "actions.npy"),
}


def _pickle_weights(ck: Path) -> None:
    import pickle

    (ck / "model.safetensors").write_bytes(pickle.dumps({"evil": 1}))


CHECKPOINT_FILE_CASES = {
    "config.json not JSON": (lambda ck: (ck / "config.json").write_text("{oops"), "config.json"),
    "config.json a list": (lambda ck: (ck / "config.json").write_text("[]"), "config.json"),
    "kind not worldmodel": (lambda ck: _le._edit_config(ck, lambda c: c.__setitem__("kind", "tokenizer")), "config.json"),
    "sim init unknown": (lambda ck: _le._edit_config(ck, lambda c: c["sim"].__setitem__("init", "magic")), "config.json"),
    "weights missing": (lambda ck: (ck / "model.safetensors").unlink(), "model.safetensors"),
    "weights a pickle payload": (_pickle_weights, "model.safetensors"),
    "weights empty": (lambda ck: (ck / "model.safetensors").write_bytes(b""), "model.safetensors"),
    "a dit tensor missing": (lambda ck: _le._edit_weights(ck, lambda t: t.pop(next(k for k in t if k.startswith("dit.")))), "missing keys"),
    "an extra tensor": (lambda ck: _le._edit_weights(ck, lambda t: t.__setitem__("dit.extra", t[next(iter(t))].clone())), "unexpected keys"),
    "inf in a weight": (lambda ck: _le._edit_weights(ck, lambda t: next(v for k, v in t.items() if k.startswith("vae.")).fill_(float("inf"))), "non-finite"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_FILE_CASES))
def test_corrupt_checkpoint_files(tiny_ckpt, clean_data, case, capsys) -> None:
    fn, where = CHECKPOINT_FILE_CASES[case]
    fn(tiny_ckpt)
    assert where in _eval(tiny_ckpt, clean_data, capsys)[0]


def test_at_least_forty_cases() -> None:
    n = len(_le.CONFIG_CASES) + len(_le.WEIGHT_CASES) + len(CHECKPOINT_FILE_CASES) + len(DATA_CASES)
    assert n >= 40, n


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_corrupt_dataset(tiny_ckpt, clean_data, tmp_path, case, capsys) -> None:
    d = tmp_path / "ds"
    shutil.copytree(clean_data, d)
    fn, where = DATA_CASES[case]
    if fn is None:  # the checkpoint's weights cut in half, next to a good dataset
        w = tiny_ckpt / "model.safetensors"
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    else:
        fn(d)
    assert where in _eval(tiny_ckpt, d, capsys)[0]
