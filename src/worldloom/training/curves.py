"""Training curves: ``worldloom plot RUN_DIR`` draws a run's ``log.jsonl`` to a PNG.

Every training command (tokenizer, dynamics, distill, temporal decoder) logs one JSON object per
``log_every`` steps to ``RUN_DIR/log.jsonl`` (:class:`~worldloom.training.loop.Trainer`). This
module reads that file back and draws four panels against the step: every ``loss*`` field (log
scale: the losses fall over decades), the throughput (``*_per_s``), the learning rate and the
gradient norm. The eval's HTML report links the PNG of the checkpoint it scored.

Key choices:

- **The file is the interface**, not the trainer: a run still in progress, killed, resumed or
  trained by another version plots the same way. A line that does not parse is an error naming the
  file and line (a torn last line, from a kill mid-write, is skipped: the trainer drops it too on
  ``--resume``).
- **matplotlib's Agg backend**, imported only here: nothing opens a window, and ``import worldloom``
  never loads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

LOG = "log.jsonl"
CURVES = "curves.png"


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``RUN_DIR/log.jsonl`` (or of that file given directly), in file order."""
    path = Path(run_dir)
    path = path / LOG if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training log here (a run dir holds {LOG} once a run has logged a step)")
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines):  # a torn last line: the process was killed while writing it
                break
            raise ValueError(f"{path}:{i}: not a JSON line ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            raise ValueError(f"{path}:{i}: expected an object with an integer 'step', got {line[:80]!r}")
        out.append(rec)
    if not out:
        raise ValueError(f"{path}: holds no logged step yet")
    return out


def _series(recs: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], float(r[key])) for r in recs
           if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) and math.isfinite(r[key])]
    return [s for s, _ in pts], [v for _, v in pts]


def plot_run(run_dir: str | Path, out: str | Path | None = None, title: str | None = None) -> Path:
    """Draw the curves of a run's log to ``out`` (default ``RUN_DIR/curves.png``); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src = Path(run_dir)
    recs = read_log(src)
    keys = sorted({k for r in recs for k in r})
    panels = [("loss (log scale)", [k for k in keys if k.startswith("loss")], True),
              ("throughput", [k for k in keys if k.endswith("_per_s")], False),
              ("learning rate", [k for k in keys if k == "lr"], False),
              ("gradient norm", [k for k in keys if k == "grad_norm"], False)]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (name, ks, log) in zip(axes[0], panels):
        for k in ks:
            x, y = _series(recs, k)
            if x:
                ax.plot(x, y, label=k, lw=1.2)
        if log and all(v > 0 for k in ks for v in _series(recs, k)[1]):
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(ks) > 1:
            ax.legend(fontsize=7)
        else:
            ax.set_ylabel(ks[0], fontsize=8)
    last = recs[-1]
    fig.suptitle(title or f"{src.resolve().name}: {len(recs)} log lines to step {last['step']}"
                 + (f", {last['elapsed_s'] / 60:.1f} min" if isinstance(last.get("elapsed_s"), (int, float)) else ""),
                 fontsize=10)
    fig.tight_layout()
    dest = Path(out) if out is not None else (src if src.is_dir() else src.parent) / CURVES
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return dest
