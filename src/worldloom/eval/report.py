"""The eval report: one HTML page per run (tables, plots, videos) and the JSON beside it.

``write_report(DIR, results, settings)`` writes

- ``DIR/index.html``: settings, a summary table (headline metrics and time of each suite), then per
  suite its notes, tables, plots and videos;
- ``DIR/results.json``: :func:`results_json`, i.e. the settings and every suite's ``to_json()``
  (the numbers to compare across commits);
- ``DIR/plots/*.png`` and ``DIR/media/*.gif``, which the page shows.

Key choices:

- **Self-contained page apart from the videos**: plots are embedded as base64 PNG (and also written as
  files, for docs); videos are GIF files next to it, shown with ``<img>``, which every browser plays
  without codecs. Long videos are thinned to at most ``max_video_frames`` (every n-th frame; the
  caption says so) and upscaled ``scale``x nearest-neighbour.
- **matplotlib's object API** (``Figure`` + Agg canvas), never pyplot: no global state, no display,
  safe inside a server or a test run.
- **Settings make a run comparable**: checkpoint, suites and their seeds (inside each suite's
  ``metrics["settings"]``), the git commit (and whether the tree was dirty), machine, date.
- Suites stay data-only (:mod:`~worldloom.eval.suite`); nothing here measures.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from ..config import atomic_write_bytes, atomic_write_json
from .suite import Plot, SuiteResult, Table, clean

MAX_VIDEO_FRAMES = 160


# ------------------------------------------------------------------------------------ settings
def git_state(where: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository holding ``where`` (this package)."""
    cwd = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10,
                             check=False)
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True,
                            text=True, timeout=10, check=False)
        return {"commit": sha.stdout.strip(), "dirty": bool(st.stdout.strip()) if st.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):  # no git here
        return {"commit": None, "dirty": None}


def machine_info() -> dict[str, Any]:
    """CPU model, core count, OS, Python and torch versions and threads."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(), "python": platform.python_version()}
    try:
        import torch

        info.update(torch=torch.__version__, threads=torch.get_num_threads(), cuda=torch.cuda.is_available())
    except ImportError:
        pass
    return info


def run_settings(checkpoint: str, suites: list[str], **extra: Any) -> dict[str, Any]:
    """What a results.json needs to be compared with another: checkpoint, suites, git, machine, date, extras."""
    return clean({"checkpoint": str(checkpoint), "suites": list(suites), "git": git_state(), "machine": machine_info(),
                  "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), **extra})


def results_json(results: list[SuiteResult], settings: dict[str, Any], errors: dict[str, str] | None = None) -> dict[str, Any]:
    """The one JSON object of a run: settings, each suite's ``to_json()`` in order, and failed suites' errors."""
    return clean({"settings": settings, "suites": {r.name: r.to_json() for r in results}, "errors": dict(errors or {})})


# ------------------------------------------------------------------------------------ text
def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def headline(result: SuiteResult) -> dict[str, Any]:
    """The suite's top-level scalar metrics (nested ones are details for the JSON and tables)."""
    return {k: v for k, v in result.metrics.items() if v is None or isinstance(v, (int, float, str, np.number))}


def markdown_table(t: Table) -> str:
    lines = [f"{t.title}", "", "| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def format_summary(results: list[SuiteResult], errors: dict[str, str] | None = None, tables: bool = True) -> str:
    """A human summary: one line per suite (time, headline metrics), then each suite's tables."""
    out = ["| suite | seconds | headline metrics |", "|---|---|---|"]
    for r in results:
        head = ", ".join(f"{k} {_cell(v)}" for k, v in headline(r).items())
        out.append(f"| {r.name} | {r.seconds:.1f} | {head} |")
    for name, err in (errors or {}).items():
        out.append(f"| {name} | failed | {err} |")
    if tables:
        for r in results:
            out += ["", f"## {r.name}", *r.notes]
            for t in r.tables:
                out += ["", markdown_table(t)]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------ media
def render_plot(p: Plot) -> bytes:
    """A PNG of one line plot (None values are gaps)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.asarray(p.x, np.float64)
    for name, ys in p.series.items():
        y = np.array([np.nan if v is None else v for v in ys], np.float64)
        if len(y) != len(x):
            raise ValueError(f"plot {p.title!r}: series {name!r} has {len(y)} values for {len(x)} x values")
        ax.plot(x, y, marker="o" if len(x) <= 20 else None, markersize=4, label=name)
    if p.logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.set(title=p.title, xlabel=p.xlabel, ylabel=p.ylabel)
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    if p.series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_gif(path: Path, frames: np.ndarray, fps: float, scale: int = 2, max_frames: int = MAX_VIDEO_FRAMES) -> int:
    """Write uint8 frames (T, H, W, 3) as a looping GIF, thinned to <= max_frames; returns the stride used."""
    from ..video import write_video

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"video {path.name}: expected uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")
    stride = max(1, -(-len(frames) // max_frames))
    write_video(path, frames[::stride], fps / stride, scale)
    return stride


def _slug(text: str, taken: set[str]) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "x"
    base, i = s, 2
    while s in taken:
        s, i = f"{base}-{i}", i + 1
    taken.add(s)
    return s


# ------------------------------------------------------------------------------------ page
_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}caption{text-align:left;font-weight:600;padding:4px 0}
figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}figcaption{font-size:12px;color:#555;max-width:640px}
img.video{image-rendering:pixelated}.err{color:#b00020}code{background:#f4f4f4;padding:0 3px}"""


_NUMBER = re.compile(r"^[-+]?\d[\d.,]*(e[-+]?\d+)?\s*(%|ms|MB|dB|px|s)?$")


def _html_table(t: Table) -> str:
    e = html.escape

    def td(c: Any) -> str:  # numbers right-aligned, text left
        text = _cell(c)
        return f"<td class='n'>{e(text)}</td>" if _NUMBER.match(text) else f"<td>{e(text)}</td>"

    head = "".join(f"<th>{e(str(c))}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(td(c) for c in row) + "</tr>" for row in t.rows)
    return f"<table><caption>{e(t.title)}</caption><tr>{head}</tr>{body}</table>"


def _training_curves(out: Path, checkpoint: Any) -> list[str]:
    """The section that shows the training curves the scored checkpoint carries (one PNG per stage)."""
    from ..checkpoint import CheckpointError, resolve, train_logs
    from ..training.curves import plot_run

    e = html.escape
    try:
        logs = train_logs(resolve(str(checkpoint))) if checkpoint else {}
    except (CheckpointError, FileNotFoundError, ValueError):
        logs = {}
    if not logs:
        return [f"<h2 id='training'>Training curves</h2><p>{e(str(checkpoint))} carries no training log "
                "(checkpoints written by the training commands keep one per stage).</p>"]
    parts = ["<h2 id='training'>Training curves</h2>"]
    for stage, log in logs.items():
        rel = f"plots/training-{stage}.png"
        try:
            plot_run(log, out / rel, title=f"{stage}: {log.name}")
        except (ValueError, OSError) as err:  # a damaged log costs its plot, not the report
            parts.append(f"<p class='err'>{e(stage)}: {e(str(err))}</p>")
            continue
        parts.append(f"<figure><a href='{rel}'><img alt='{e(stage)} training curves' src='{rel}'></a>"
                     f"<figcaption>{e(stage)} (<a href='{rel}'>png</a>)</figcaption></figure>")
    return parts


def write_report(out_dir: str | Path, results: list[SuiteResult], settings: dict[str, Any],
                 errors: dict[str, str] | None = None, *, fps: float = 15.0, scale: int = 2,
                 max_video_frames: int = MAX_VIDEO_FRAMES) -> Path:
    """Write ``index.html``, ``results.json``, ``plots/`` and ``media/`` into ``out_dir``; returns the page's path."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--report {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    e = html.escape
    data = results_json(results, settings, errors)
    atomic_write_json(out / "results.json", data)

    taken: set[str] = set()
    summary = Table("Summary", ["suite", "seconds", "headline metrics"],
                    [[r.name, f"{r.seconds:.1f}", ", ".join(f"{k} {_cell(v)}" for k, v in headline(r).items())]
                     for r in results] + [[n, "failed", err] for n, err in (errors or {}).items()])
    s = settings
    git = s.get("git") or {}
    facts = [("checkpoint", s.get("checkpoint")), ("suites", ", ".join(s.get("suites", []))),
             ("git commit", f"{git.get('commit') or 'unknown'}" + (" (uncommitted changes)" if git.get("dirty") else "")),
             ("machine", ", ".join(f"{k} {v}" for k, v in (s.get("machine") or {}).items())), ("date", s.get("date")),
             ("command", s.get("command"))]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>worldloom eval: {e(str(s.get('checkpoint')))}</title>",
             f"<style>{_CSS}</style></head><body><h1>worldloom eval</h1>",
             _html_table(Table("Settings", ["what", "value"], [[k, v] for k, v in facts if v is not None])),
             _html_table(summary), "<p>All numbers: <a href='results.json'>results.json</a>.</p>"]
    parts += _training_curves(out, s.get("checkpoint"))
    for name, err in (errors or {}).items():
        parts.append(f"<h2 id='{e(name)}'>{e(name)}</h2><p class='err'>Suite failed: {e(err)}</p>")
    for r in results:
        parts.append(f"<h2 id='{e(r.name)}'>{e(r.name)} <small>({r.seconds:.1f} s)</small></h2>")
        parts += [f"<p>{e(n)}</p>" for n in r.notes]
        parts += [_html_table(t) for t in r.tables]
        for p in r.plots:
            png = render_plot(p)
            rel = f"plots/{_slug(r.name + '-' + p.title, taken)}.png"
            atomic_write_bytes(out / rel, png)
            parts.append(f"<figure><img alt='{e(p.title)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                         f"<figcaption>{e(p.title)} (<a href='{rel}'>png</a>)</figcaption></figure>")
        for title, frames in r.videos.items():
            rel = f"media/{_slug(r.name + '-' + title, taken)}.gif"
            stride = write_gif(out / rel, frames, fps, scale, max_video_frames)
            h, w = np.asarray(frames).shape[1:3]
            thin = f"; every {stride}th of {len(frames)} frames" if stride > 1 else f"; {len(frames)} frames"
            parts.append(f"<figure><img class='video' src='{rel}' width='{w * scale}' height='{h * scale}' alt='{e(title)}'>"
                         f"<figcaption>{e(title)}{e(thin)}</figcaption></figure>")
    parts.append("</body></html>\n")
    page = out / "index.html"
    atomic_write_bytes(page, "\n".join(parts).encode())
    return page


__all__ = ["format_summary", "git_state", "headline", "machine_info", "markdown_table", "render_plot",
           "results_json", "run_settings", "write_gif", "write_report"]
