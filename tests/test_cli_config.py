"""``--config FILE`` and ``--print-config`` on the training commands: round trip, precedence, errors, a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worldloom.cli import main


@pytest.fixture
def data(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    assert main(["collect", "arena", "--episodes", "1", "--steps", "12", "--out", str(out)]) == 0
    return out


def _dyn(data: Path, tok: Path, *extra: str) -> list[str]:
    return ["train", "dynamics", "--preset", "tiny", "--data", str(data), "--tokenizer", str(tok),
            "--out", str(data.parent / "out"), *extra]


def _printed(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main([*args, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def test_print_config_reads_back_and_flags_win(data, tiny_ckpt, tmp_path, capsys) -> None:
    first = _printed(_dyn(data, tiny_ckpt, "--train-steps", "7", "--dyn-dim", "48"), capsys)
    assert set(first) == {"dynamics", "recipe", "train", "sim"}
    assert first["train"]["steps"] == 7 and first["dynamics"]["dim"] == 48
    f = tmp_path / "run.json"
    f.write_text(json.dumps(first))
    assert _printed(_dyn(data, tiny_ckpt, "--config", str(f)), capsys) == first  # the file alone rebuilds it
    again = _printed(_dyn(data, tiny_ckpt, "--config", str(f), "--train-lr", "0.25"), capsys)
    assert again["train"]["lr"] == 0.25 and again["train"]["steps"] == 7  # the flag wins, the file keeps the rest
    # A partial file changes only what it names; the preset fills the rest.
    f.write_text(json.dumps({"train": {"steps": 3}}))
    part = _printed(_dyn(data, tiny_ckpt, "--config", str(f)), capsys)
    assert part["train"]["steps"] == 3 and part["dynamics"]["dim"] == _printed(_dyn(data, tiny_ckpt), capsys)["dynamics"]["dim"]
    assert not (data.parent / "out").exists()  # --print-config trains nothing


def test_a_run_from_a_config_file_uses_it(data, tiny_ckpt, tmp_path, capsys) -> None:
    f = tmp_path / "run.json"
    f.write_text(json.dumps({"dynamics": {"dim": 48, "heads": 4}, "train": {"steps": 2, "lr": 0.002}}))
    assert main(_dyn(data, tiny_ckpt, "--config", str(f))) == 0
    saved = json.loads((data.parent / "out" / "config.json").read_text())
    assert saved["dynamics"]["dim"] == 48 and saved["dynamics"]["heads"] == 4
    assert saved["train"]["steps"] == 2 and saved["train"]["lr"] == 0.002
    # The checkpoint itself is a config: the same run again from its directory.
    capsys.readouterr()
    redo = _printed(_dyn(data, tiny_ckpt, "--config", str(data.parent / "out")), capsys)
    assert redo["dynamics"] == saved["dynamics"] and redo["train"] == saved["train"] and redo["recipe"] == saved["recipe"]


@pytest.mark.parametrize("content,named", [
    ('{"train": {"stepz": 3}}', "unknown TrainConfig field(s) ['stepz']"),
    ('{"train": {"steps": "many"}}', "field 'steps' must be an integer"),
    ('{"recipe": {"loss": "l7"}}', "field 'loss' must be one of"),
    ('{"model": {"dim": 3}}', "has none of the sections"),
    ('[1, 2]', "expected a JSON object"),
    ('{"train": ', "not valid JSON"),
])
def test_bad_config_files_name_the_file_and_field(data, tiny_ckpt, tmp_path, capsys, content, named) -> None:
    f = tmp_path / "bad.json"
    f.write_text(content)
    assert main(_dyn(data, tiny_ckpt, "--config", str(f))) == 2
    err = capsys.readouterr().err
    assert named in err and str(f) in err
    assert not (data.parent / "out").exists()


@pytest.mark.parametrize("name", ["arena", "phys2d"])
def test_a_shipped_checkpoints_config_reproduces_its_run(name, data, tmp_path, capsys) -> None:
    """--config CHECKPOINT resolves to exactly the sections its config.json holds (paths aside)."""
    from worldloom.checkpoint import read_config

    d, saved = read_config(name)
    got = _printed(["train", "dynamics", "--data", str(data), "--tokenizer", str(d), "--out", str(tmp_path / "o"),
                    "--config", str(d), "--dyn-n-actions", str(saved["dynamics"]["n_actions"])], capsys)
    for section in ("dynamics", "recipe", "train", "sim"):
        want = {**saved[section]}
        for k, v in got[section].items():  # fields newer than the checkpoint print at their defaults
            want.setdefault(k, v)
        assert got[section] == want, section


def test_yaml_config_files(data, tiny_ckpt, tmp_path, capsys) -> None:
    f = tmp_path / "run.yaml"
    f.write_text("# a hand-written run\ntrain:\n  steps: 9\n  betas: [0.8, 0.95]\ndynamics:\n  dim: 64\n")
    got = _printed(_dyn(data, tiny_ckpt, "--config", str(f)), capsys)
    assert got["train"]["steps"] == 9 and got["train"]["betas"] == [0.8, 0.95] and got["dynamics"]["dim"] == 64
    f.write_text("train: [steps: 3\n")
    assert main(_dyn(data, tiny_ckpt, "--config", str(f))) == 2
    assert f"{f}: not valid YAML" in capsys.readouterr().err


def test_missing_config_file_and_other_commands(data, tiny_ckpt, tmp_path, capsys) -> None:
    assert main(_dyn(data, tiny_ckpt, "--config", str(tmp_path / "nope.json"))) == 2
    assert "nope.json: file not found" in capsys.readouterr().err
    tok = _printed(["train", "tokenizer", "--preset", "tiny", "--data", str(data), "--out", str(tmp_path / "t"),
                    "--config", str(tiny_ckpt)], capsys)  # a world model holds its tokenizer's vae section
    assert tok["vae"]["width"] == 16 and set(tok) == {"vae", "train"}
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"distill": {"recipe": {"student_steps": 2}, "train": {"steps": 5}}}))  # as a student stores it
    dis = _printed(["distill", "--teacher", str(tiny_ckpt), "--data", str(data), "--out", str(tmp_path / "s"),
                    "--config", str(f)], capsys)
    assert dis["recipe"]["student_steps"] == 2 and dis["train"]["steps"] == 5


def test_a_checkpoint_gives_only_the_sections_of_its_kind(data, tiny_ckpt, tmp_path, capsys) -> None:
    """A world model's `train` is its DiT's: the tokenizer command takes only its `vae` from it; a
    teacher (not a student) holds no distillation configs."""
    import json as _json

    cfg_f = tiny_ckpt / "config.json"
    cfg = _json.loads(cfg_f.read_text())
    cfg_f.write_text(_json.dumps({**cfg, "train": {"steps": 777}, "recipe": {"clip_len": 4}}))
    preset = _printed(["train", "tokenizer", "--preset", "tiny", "--data", str(data), "--out", str(tmp_path / "t")], capsys)
    tok = _printed(["train", "tokenizer", "--preset", "tiny", "--data", str(data), "--out", str(tmp_path / "t"),
                    "--config", str(tiny_ckpt)], capsys)
    assert tok["train"] == preset["train"] and tok["train"]["steps"] != 777
    assert main(["distill", "--teacher", str(tiny_ckpt), "--data", str(data), "--out", str(tmp_path / "s"),
                 "--config", str(tiny_ckpt), "--print-config"]) == 2
    assert "has none of the sections" in capsys.readouterr().err
