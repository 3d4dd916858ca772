"""save_pretrained -> load round trips bit for bit; Hub ids load from a local cache laid out as
huggingface_hub lays it out, offline; cards carry front-matter, once."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import worldloom
from worldloom.checkpoint import CheckpointError, read_checkpoint, record_metrics
from worldloom.runtime.loading import load, save_pretrained
from worldloom.runtime.simulator import Simulator


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _rollout(model, n: int = 3) -> np.ndarray:
    sim = Simulator(model)
    sim.reset(np.zeros((2, 64, 64, 3), np.uint8), [0, 0])  # noise seeded by SimConfig.seed
    return np.stack([sim.step(1) for _ in range(n)])


def test_save_pretrained_round_trips_bit_for_bit(tiny_ckpt, tmp_path):
    m = load(tiny_ckpt)
    out = m.save_pretrained(tmp_path / "again")
    m2 = worldloom.load(out)
    assert _same_weights(m.dit, m2.dit) and _same_weights(m.vae, m2.vae)
    assert m2.action_spec == m.action_spec and m2.sim == m.sim
    assert np.array_equal(_rollout(m), _rollout(m2))
    _, c1, _ = read_checkpoint(tiny_ckpt)
    _, c2, _ = read_checkpoint(out)
    assert {k: c1[k] for k in ("vae", "dynamics", "action_spec", "env")} == {k: c2[k] for k in ("vae", "dynamics", "action_spec", "env")}


def test_save_pretrained_keeps_the_play_context_and_training_logs(tiny_ckpt, tmp_path):
    ctx = np.zeros((4, 64, 64, 3), np.uint8)
    ctx[:, 10] = 200
    np.save(tiny_ckpt / "context_frames.npy", ctx)
    np.save(tiny_ckpt / "context_actions.npy", np.zeros(4, np.int64))
    (tiny_ckpt / "train_log-dynamics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    out = load(tiny_ckpt).save_pretrained(tmp_path / "again")
    assert np.array_equal(np.load(out / "context_frames.npy"), ctx)
    assert (out / "train_log-dynamics.jsonl").read_text() == '{"step": 1, "loss": 0.5}\n'


def test_a_sped_up_model_saves_its_full_precision_weights(tiny_ckpt, tmp_path):
    fp32 = load(tiny_ckpt)
    fast = load(tiny_ckpt, precision="int8")
    assert fast.base is not None and fast.config.get("speed_applied")
    m2 = load(fast.save_pretrained(tmp_path / "s"))
    assert _same_weights(fp32.dit, m2.dit)
    assert "speed_applied" not in read_checkpoint(tmp_path / "s")[1]


def test_save_pretrained_keeps_the_sim_settings_it_runs_with(tiny_ckpt, tmp_path):
    from dataclasses import replace

    m = load(tiny_ckpt)
    m = replace(m, sim=replace(m.sim, steps=1, window=4))
    m2 = load(save_pretrained(m, tmp_path / "s"))
    assert (m2.sim.steps, m2.sim.window) == (1, 4)


def test_half_precision_save_is_smaller_and_exact_for_half_weights(tiny_ckpt, tmp_path):
    m = load(tiny_ckpt)
    a = save_pretrained(m, tmp_path / "a", dtype="float16")
    b = save_pretrained(load(a), tmp_path / "b", dtype="float16")
    full = save_pretrained(m, tmp_path / "full")
    assert (a / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="dtype must be one of"):
        save_pretrained(m, tmp_path / "c", dtype="int4")


def test_save_pretrained_refuses_the_directory_it_was_loaded_from(tiny_ckpt):
    m = load(tiny_ckpt)
    before = (tiny_ckpt / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="loaded from"):
        m.save_pretrained(tiny_ckpt)
    assert (tiny_ckpt / "model.safetensors").read_bytes() == before


def test_cards_have_front_matter_once(tiny_ckpt, tmp_path):
    out = load(tiny_ckpt).save_pretrained(tmp_path / "s")
    record_metrics(out, "eval", {"psnr": 20.0}, "| a |\n", "worldloom eval ...")
    record_metrics(out, "physics", {"x": 1}, "| b |\n", "worldloom eval --suite physics")
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: worldloom\n") and card.count("library_name:") == 1
    head = card.split("\n---\n", 1)[0]
    assert '- "world-model"' in head and '- "arena"' in head and '- "eval"' in head and '- "physics"' in head
    assert "# tiny" in card and card.count("## Measured: eval") == 1


def _hub_cache(root: Path, repo: str, ckpt: Path) -> Path:
    """A cache as huggingface_hub lays it out: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    d = root / ("models--" + repo.replace("/", "--"))
    (d / "refs").mkdir(parents=True)
    (d / "refs" / "main").write_text(commit)
    snap = d / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in ("config.json", "model.safetensors", "README.md"):
        (snap / f).write_bytes((ckpt / f).read_bytes())
    return snap


def test_hub_id_loads_from_the_local_cache_offline(tiny_ckpt, tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    snap = _hub_cache(tmp_path / "hub", "someone/tiny-world", tiny_ckpt)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    m = worldloom.load("someone/tiny-world")
    assert m.path == snap and _same_weights(m.dit, load(tiny_ckpt).dit)
    with pytest.raises(CheckpointError) as e:
        worldloom.load("someone/not-there")
    msg = str(e.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE" in msg and "huggingface-cli download someone/not-there" in msg


def test_a_local_directory_wins_over_a_hub_id(tiny_ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "wm").symlink_to(tiny_ckpt)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # would fail if the Hub were asked
    assert load("org/wm").path == Path("org/wm")


def test_hub_id_without_huggingface_hub_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(CheckpointError, match=r"pip install 'worldloom\[hub\]'"):
        load("someone/tiny-world")
