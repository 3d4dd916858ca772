"""Speed: the rollout bench's numbers for a checkpoint, as an eval suite (FPS, latency, stages, memory).

This wraps :func:`worldloom.runtime.bench.rollout_bench` (one batch-1 Simulator streaming from a real
arena context, every frame timed) so that a full eval reports speed next to quality, from the same
loop that play and agents run. It measures nothing of its own.

Key choices:

- **300 frames by default**: the shortest run whose time flatness (median of the last 100 frames over
  frames 100-200; ``runtime.bench.flatness``) the bench measures on whole 100-frame spans, and ~30 s at the
  bundled checkpoint's ~10 FPS. The 2,000-frame flatness and memory soak stays ``worldloom bench``'s job
  (docs/BENCHMARKS.md).
- **Thread count is reported, not set**: the caller (the CLI's ``--threads``) owns it; the numbers
  depend on it and on whatever else the machine runs, so compare ratios within one run.
- **Headline metrics flat** (``fps``, ``latency_p50_ms`` ...) for the summary table; the bench's whole
  result stays under ``bench`` for the JSON.
"""

from __future__ import annotations

from typing import Any

from ..runtime.bench import rollout_bench
from ..runtime.simulator import WorldModel
from .suite import SuiteResult, Table

FRAMES = 300


def _f(v: Any, nd: int = 2, unit: str = "") -> str:
    return "n/a" if v is None else f"{v:.{nd}f}{unit}"


def run_speed(
    model: WorldModel,
    *,
    frames: int = FRAMES,
    seed: int = 0,
    sim_overrides: dict[str, Any] | None = None,
    progress: bool = False,
) -> SuiteResult:
    """Stream ``frames`` frames through one batch-1 Simulator and report the bench's measurements.

    Args:
        model: a loaded world model (any env; the context comes from its env where it can be built).
        frames: frames generated after the 4-frame context (>= 200 for the flatness ratio).
        seed: seed of the context env reset and of the sampling noise (unless ``sim_overrides`` sets one).
        sim_overrides: SimConfig fields to override (steps, window, sink ...).
        progress: unused (the bench is one loop without a bar); accepted like every suite's.
    """
    if int(frames) < 1:
        raise ValueError(f"speed: frames must be >= 1, got {frames}")
    b = rollout_bench(model, int(frames), sim_overrides, seed=seed)
    lat, rss, sim, m, sysinfo = b["latency_ms"], b["rss_mb"], b["sim"], b["model"], b["system"]
    metrics: dict[str, Any] = {
        "fps": b["fps"], "latency_p50_ms": lat["p50"], "latency_p95_ms": lat["p95"], "latency_p99_ms": lat["p99"],
        **{f"stage_{k}": v for k, v in b["stages_ms"].items()},
        "rss_end_mb": rss["end"], "rss_growth_pct": b["rss_growth_pct"], "flatness_ratio": b["flatness_ratio"],
        "bench": b,
    }
    tables = [
        Table("Run", ["what", "value"], [
            ["checkpoint", str(m["path"])],
            ["model", f"{m['dit_params'] / 1e6:.2f} M DiT + {m['vae_params'] / 1e6:.2f} M VAE params, "
                      f"{m['tokens_per_frame']} tokens/frame, {m['frame_size']} px frames"],
            ["sampler / context", f"{sim['steps']} steps, window {sim['window']}, sink {sim['sink']}, "
                                  f"context noise {sim['context_noise']}, KV cache {sim['cache_bytes'] / 2**20:.1f} MB"],
            ["rollout", f"{b['frames']} frames, batch 1, context: {b['context_source']}"],
            ["system", f"{sysinfo['device']}, {sysinfo['threads']} threads, {sysinfo['cpu']}, torch {sysinfo['torch']}"],
        ]),
        Table("Speed (wall time of Simulator.step: denoise + cache write + decode)",
              ["FPS", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms"],
              [[_f(b["fps"], 1), _f(lat["mean"]), _f(lat["p50"]), _f(lat["p95"]), _f(lat["p99"]), _f(lat["max"])]]),
        Table("Time per stage (mean ms per frame)", list(b["stages_ms"]), [[_f(v) for v in b["stages_ms"].values()]]),
        Table("Memory and flatness", ["RSS start", "RSS frame 100", "RSS full window", "RSS end",
                                      "RSS growth after full window", "time flatness (median, last span / span from frame 100)"],
              [[_f(rss["start"], 1, " MB"), _f(rss["frame_100"], 1, " MB"),
                f"{_f(rss['full_window'], 1, ' MB')} (frame {b['full_window_frame']})", _f(rss["end"], 1, " MB"),
                _f(b["rss_growth_pct"], 2, " %"), _f(b["flatness_ratio"], 3)]]),
    ]
    notes = [f"`worldloom bench --checkpoint ... --frames {b['frames']}` measures the same; metrics a run this "
             "short cannot measure (flatness needs >= 200 frames) are n/a."]
    return SuiteResult("speed", metrics, tables, notes=notes)


__all__ = ["FRAMES", "run_speed"]
