"""Trackers: TensorBoard gets the log.jsonl curves; W&B (a stand-in module) keeps one run id across resume."""

from __future__ import annotations

import json
import sys
import types

import pytest

from worldloom.training.loop import Trainer
from worldloom.training.tracking import make_tracker

from test_loop import LinearTask, cfg  # tests/training is on sys.path (pytest prepend mode)


def test_tensorboard_gets_every_logged_scalar(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(LinearTask(), cfg(log_with="tensorboard"), tmp_path, progress=False).fit()
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    got = {e.step: e.value for e in acc.Scalars("loss")}
    assert got == pytest.approx({line["step"]: line["loss"] for line in lines})
    assert sorted(got) == [10, 20, 30, 40] and "lr" in acc.Tags()["scalars"]


class FakeWandb(types.ModuleType):
    """Records init and log calls as the wandb client would receive them."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.inits: list[dict] = []
        self.logged: list[tuple[int, dict]] = []
        self.finished = 0

    def init(self, **kw):
        self.inits.append(kw)
        fake = self

        class Run:
            def log(self, metrics, step):
                fake.logged.append((step, metrics))

            def finish(self):
                fake.finished += 1
        return Run()


def test_wandb_logs_at_the_step_and_resumes_the_same_run(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    Trainer(LinearTask(), cfg(log_with="wandb", steps=20), tmp_path, progress=False).fit()
    assert [s for s, _ in fake.logged] == [10, 20] and "loss" in fake.logged[0][1] and "step" not in fake.logged[0][1]
    first_id = fake.inits[0]["id"]
    assert fake.inits[0]["config"]["steps"] == 20 and fake.inits[0]["resume"] == "allow" and fake.finished == 1
    Trainer(LinearTask(), cfg(log_with="wandb", steps=40), tmp_path, progress=False).fit(resume=True)
    assert fake.inits[1]["resume_from"] == f"{first_id}?_step=20"  # --resume rewinds the same W&B run to its state
    assert [s for s, _ in fake.logged] == [10, 20, 30, 40]


def test_tensorboard_drops_steps_past_the_resumed_one(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from worldloom.training.tracking import TensorBoardTracker

    tb = TensorBoardTracker(tmp_path, {})
    tb.begin(0)
    for s in (10, 20, 30):  # a session killed after logging 30 but saving its state at 20
        tb.log(s, {"loss": float(s)})
    tb.close()
    tb = TensorBoardTracker(tmp_path, {})
    tb.begin(20)
    tb.log(30, {"loss": 99.0})
    tb.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(10, 10.0), (20, 20.0), (30, 99.0)]


def test_missing_tracker_package_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(RuntimeError, match=r"pip install 'worldloom\[wandb\]'"):
        Trainer(LinearTask(), cfg(log_with="wandb"), tmp_path, progress=False)
    assert not (tmp_path / "log.jsonl").exists()
    with pytest.raises(ValueError, match="unknown tracker"):
        make_tracker("mlflow", tmp_path, {})
