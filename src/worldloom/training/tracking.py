"""Experiment trackers: where a training run's log lines go besides ``log.jsonl``.

Every run writes ``RUN_DIR/log.jsonl`` (what ``worldloom plot`` draws and ``--resume`` trims); a
tracker named by ``TrainConfig.log_with`` (``--log-with``) receives the same lines as they are written:

- ``tensorboard``: event files in ``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``), through
  ``torch.utils.tensorboard`` (the ``track`` extra installs the ``tensorboard`` package it needs).
- ``wandb``: a Weights & Biases run in ``RUN_DIR``, its id kept in ``RUN_DIR/wandb_id`` so ``--resume``
  continues the same run; project from ``WANDB_PROJECT`` (default ``worldloom``), and ``WANDB_MODE=offline``
  works without a network (the ``wandb`` extra).

Only rank 0 tracks. A tracker whose package is missing is an error before the first step, naming
the package to install, so a long run never trains for an hour and then loses its curves. A run
resumed at step s drops what the tracker holds past s (the trainer trims ``log.jsonl`` alike):
TensorBoard purges those events, W&B rewinds the run to s.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Protocol

TRACKERS = ("none", "tensorboard", "wandb")


class Tracker(Protocol):
    def begin(self, step: int) -> None: ...
    def log(self, step: int, metrics: dict[str, float]) -> None: ...
    def close(self) -> None: ...


class TensorBoardTracker:
    """Scalars under their log.jsonl names, x = optimizer step."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # torch raises this when the tensorboard package is absent
            raise RuntimeError(f"--log-with tensorboard needs the tensorboard package: pip install 'worldloom[track]' ({e})") from None
        self._cls, self.run_dir, self.config, self.writer = SummaryWriter, run_dir, config, None

    def begin(self, step: int) -> None:
        self.writer = self._cls(log_dir=str(self.run_dir / "tensorboard"), purge_step=step + 1 if step else None)
        if not step:
            self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in self.config.items()), 0)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and k != "step":
                self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class WandbTracker:
    """One W&B run per run dir (resumed under the same id), metrics logged at their optimizer step."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError:
            raise RuntimeError("--log-with wandb needs the wandb package: pip install 'worldloom[wandb]'") from None
        self.wandb, self.run_dir, self.config, self.run = wandb, run_dir, config, None

    def begin(self, step: int) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        id_file = self.run_dir / "wandb_id"
        known = id_file.is_file()
        run_id = id_file.read_text().strip() if known else uuid.uuid4().hex[:12]
        id_file.write_text(run_id + "\n")
        where = {"resume_from": f"{run_id}?_step={step}"} if known and step else {"id": run_id, "resume": "allow"}
        self.run = self.wandb.init(project=os.environ.get("WANDB_PROJECT", "worldloom"), dir=str(self.run_dir),
                                   name=self.run_dir.name, config=self.config, **where)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log({k: v for k, v in metrics.items() if k != "step"}, step=step)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()


def make_tracker(name: str, run_dir: str | os.PathLike, config: dict[str, Any]) -> Tracker | None:
    """The tracker ``name`` (one of :data:`TRACKERS`) for ``run_dir``; None for ``none``."""
    if name not in TRACKERS:
        raise ValueError(f"log_with {name!r}: unknown tracker; known: {', '.join(TRACKERS)}")
    if name == "none":
        return None
    return (TensorBoardTracker if name == "tensorboard" else WandbTracker)(Path(run_dir), config)
