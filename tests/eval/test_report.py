"""The HTML report and results.json: a valid page with tables, plots and videos, and the JSON beside it."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from worldloom.eval.report import (
    format_summary,
    results_json,
    run_settings,
    write_gif,
    write_report,
)
from worldloom.eval.suite import Plot, SuiteResult, Table, side_by_side

_VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Checker(HTMLParser):
    """Balanced tags; collects img sources."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.imgs: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])
        if tag == "table":
            self.tables += 1
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def _results() -> list[SuiteResult]:
    rng = np.random.default_rng(0)
    model, truth = rng.integers(0, 255, (2, 400, 16, 16, 3), dtype=np.uint8)
    a = SuiteResult("alpha", {"score": 0.5, "nan_metric": float("nan"), "count": np.int64(3), "nested": {"x": [1.0]}},
                    [Table("Scores <per k>", ["k", "psnr"], [[8, 21.5], [32, None]])],
                    [Plot("PSNR against k", "k", "dB", [8.0, 32.0], {"model": [21.5, None], "truth": [40.0, 41.0]}, logx=True)],
                    {"round trip": side_by_side(model, truth)}, seconds=1.25, notes=["A note & more."])
    b = SuiteResult("beta", {"fps": 9.5}, [Table("Speed", ["FPS"], [[9.5]])], seconds=0.5)
    return [a, b]


def test_report_page_json_plots_videos(tmp_path: Path):
    out = tmp_path / "rep"
    settings = run_settings("checkpoints/x", ["alpha", "beta", "gamma"], command="worldloom eval ...")
    page = write_report(out, _results(), settings, {"gamma": "RuntimeError: boom"}, fps=15, scale=2, max_video_frames=100)
    assert page == out / "index.html"
    text = page.read_text()
    chk = _Checker()
    chk.feed(text)
    chk.close()
    assert chk.stack == [] and chk.tables >= 4  # settings, summary, one per suite table
    assert "Scores &lt;per k&gt;" in text and "A note &amp; more." in text  # escaped
    assert "gamma" in text and "RuntimeError: boom" in text  # a failed suite is shown, not skipped
    pngs = [s for s in chk.imgs if s.startswith("data:image/png;base64,")]
    assert len(pngs) == 1 and len(list((out / "plots").glob("*.png"))) == 1
    gifs = [s for s in chk.imgs if s.endswith(".gif")]
    assert len(gifs) == 1 and (out / gifs[0]).is_file()
    shape = iio.improps(out / gifs[0], extension=".gif").shape
    assert shape[0] == 100 and shape[1:3] == (32, (3 * 16 + 4) * 2)  # 400 frames thinned (every 4th), 2x
    assert "every 4th of 400 frames" in text

    data = json.loads((out / "results.json").read_text())
    assert data == json.loads(json.dumps(results_json(_results(), settings, {"gamma": "RuntimeError: boom"})))
    assert list(data["suites"]) == ["alpha", "beta"] and data["errors"] == {"gamma": "RuntimeError: boom"}
    alpha = data["suites"]["alpha"]
    assert alpha["metrics"]["nan_metric"] is None and alpha["metrics"]["count"] == 3 and alpha["seconds"] == 1.2
    s = data["settings"]
    assert s["checkpoint"] == "checkpoints/x" and s["date"] and "cpu" in s["machine"]
    assert "commit" in s["git"]  # None outside a git checkout, a sha inside one
    if s["git"]["commit"] is not None:
        assert len(s["git"]["commit"]) == 40


def test_summary_text_and_errors(tmp_path: Path):
    text = format_summary(_results(), {"gamma": "boom"})
    assert "| alpha | 1.2 | score 0.5, nan_metric n/a, count 3 |" in text
    assert "| gamma | failed | boom |" in text and "## beta" in text and "| 8 | 21.5 |" in text
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        write_report(tmp_path / "file", _results(), {})
    with pytest.raises(ValueError, match="uint8"):
        write_gif(tmp_path / "v.gif", np.zeros((3, 8, 8, 3), np.float32), fps=15)


def test_report_shows_the_checkpoints_training_curves(tmp_path: Path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"kind": "worldmodel"}')
    lines = [{"step": s, "loss": 1.0 / s, "lr": 1e-3, "items_per_s": 50.0} for s in (10, 20, 30)]
    (ckpt / "train_log-dynamics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (ckpt / "train_log-tokenizer.jsonl").write_text("not json\n{}\n")  # damaged: costs its plot, not the page
    page = write_report(tmp_path / "r", _results(), run_settings(str(ckpt), ["alpha", "beta"]))
    text = page.read_text()
    c = _Checker()
    c.feed(text)
    assert "plots/training-dynamics.png" in c.imgs and (tmp_path / "r/plots/training-dynamics.png").stat().st_size > 1000
    assert "tokenizer:" in text and "training-tokenizer.png" not in text
    bare = write_report(tmp_path / "r2", _results(), run_settings(str(tmp_path / "nowhere"), ["alpha"]))
    assert "carries no training log" in bare.read_text()
