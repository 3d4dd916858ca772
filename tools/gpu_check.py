"""``make gpu-check``: everything a lent GPU machine should measure, in one run, to one JSON file.

1. ``pytest -m gpu`` (the CUDA-only tests);
2. a ``gpu-small`` training of ``--minutes`` (default 5) from nothing: arena data collected at the
   preset's frame size, a short tokenizer run, then dynamics for as many steps as fit (the step time
   comes from ``worldloom doctor``'s timed step), through the CLI a user runs;
3. rollout speed rows on the device: precision (fp32, bf16) x torch.compile (off, on) for the trained
   128 px model and for an untrained ``gpu`` preset model at 256 px (speed does not depend on the weights);
4. the play server's WebSocket bench at 128 and 256 px, with the model on the device.

``--device cpu --tiny`` runs the same stages at toy size on a CPU (the fast suite does, so the script
cannot rot between GPU sessions); its numbers mean nothing.

    python tools/gpu_check.py [--out runs/gpu-check.json] [--minutes 5] [--device cuda] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WL = [sys.executable, "-m", "worldloom.cli"]


def sh(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def step(report: dict[str, Any], name: str, fn: Any) -> Any:
    """Run one stage; its result, or its error, goes into the report (one failed stage spares the rest)."""
    t = time.time()
    try:
        out = fn()
        report[name] = {"ok": True, "seconds": round(time.time() - t, 1), **(out if isinstance(out, dict) else {})}
        return out
    except Exception as e:  # noqa: BLE001 - the report says what failed, and the next stage still runs
        report[name] = {"ok": False, "seconds": round(time.time() - t, 1), "error": f"{type(e).__name__}: {e}"[-2000:]}
        return None


def gpu_tests() -> dict[str, Any]:
    p = sh([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"], 1800)
    if p.returncode not in (0, 5):  # 5: nothing collected
        raise RuntimeError(p.stdout[-3000:] + p.stderr[-1000:])
    return {"summary": (p.stdout.strip().splitlines() or [""])[-1]}


def train(work: Path, preset: str, minutes: float, tiny: bool, device: str) -> dict[str, Any]:
    from worldloom.recipes import presets

    pr = presets.get(preset)
    data = work / "data"
    eps, steps = ("4", "24") if tiny else ("200", "300")
    r = sh(WL + ["collect", "arena", "--episodes", eps, "--steps", steps, "--frame-size", str(pr.vae.frame_size),
                 "--out", str(data), "--overwrite"], 1800)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    dev = ["--train-device", device]
    tok_steps = "3" if tiny else "1500"
    r = sh(WL + ["train", "tokenizer", "--preset", preset, "--data", str(data), "--out", str(work / "tok"),
                 "--train-steps", tok_steps, *dev], 3600)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    doc = json.loads(sh(WL + ["doctor", "--preset", preset, "--json"], 600).stdout)
    step_s = (doc.get("cuda") or {}).get("step_s")  # the timed step (CUDA only); compile's first steps cost more
    n = 3 if tiny else max(20, int(minutes * 60 / max(1e-3, float(step_s or 1.0))))
    t = time.time()
    r = sh(WL + ["train", "dynamics", "--preset", preset, "--data", str(data), "--tokenizer", str(work / "tok"),
                 "--out", str(work / "wm"), "--train-steps", str(n), *dev], 7200)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    log = [json.loads(x) for x in (work / "wm" / "run" / "log.jsonl").read_text().splitlines()]
    return {"preset": preset, "steps": n, "doctor_step_s": step_s, "wall_s": round(time.time() - t, 1),
            "loss_first": log[0]["loss"], "loss_last": log[-1]["loss"],
            "frames_per_s": [r_.get("frames_per_s") for r_ in log][-1],
            "tokenizer_psnr_db": json.loads((work / "tok" / "config.json").read_text())["metrics"]["recon_psnr_db"]}


def untrained(work: Path, preset: str) -> Path:
    """An untrained world model of ``preset`` saved as a checkpoint: speed rows need no trained weights."""
    from dataclasses import asdict

    import torch

    from worldloom.checkpoint import save_checkpoint
    from worldloom.envs.arena import ARENA_ACTIONS
    from worldloom.models.dit import CausalDiT
    from worldloom.models.vae import VAE
    from worldloom.recipes import presets

    pr = presets.get(preset)
    torch.manual_seed(0)
    cfg = {"kind": "worldmodel", "vae": asdict(pr.vae), "dynamics": asdict(pr.dynamics), "sim": dict(pr.sim),
           "action_spec": ARENA_ACTIONS.to_dict(), "env": "arena", "env_kwargs": {}, "fps": 15}
    return save_checkpoint(work / f"untrained-{preset}", cfg, {"vae": VAE(pr.vae), "dit": CausalDiT(pr.dynamics)},
                           card=f"# untrained {preset} (speed rows only)\n")


def speed_rows(ckpt: Path, device: str, frames: int, tiny: bool) -> dict[str, Any]:
    from worldloom.runtime.bench import rollout_bench
    from worldloom.runtime.loading import load

    rows = []
    for precision in ("fp32", "bf16"):
        for compile_ in ((False,) if tiny else (False, True)):
            t = time.time()
            try:
                model = load(ckpt, device=device, precision=precision, compile=compile_)
                res = rollout_bench(model, frames, {}, seed=0)
                rows.append({"precision": precision, "compile": compile_, **{k: res[k] for k in res if not isinstance(res[k], list)}})
            except Exception as e:  # noqa: BLE001 - one row's failure is a row of the table
                rows.append({"precision": precision, "compile": compile_, "error": f"{type(e).__name__}: {e}"[-500:]})
            rows[-1]["seconds"] = round(time.time() - t, 1)
    rows.append({"precision": "int8", "skipped": "dynamic int8 Linears are a CPU kernel (torch.ao quantize_dynamic)"})
    rows.append({"cuda_graphs": "not implemented in worldloom's Simulator yet"})
    return {"checkpoint": str(ckpt), "frames": frames, "rows": rows}


def ws_row(ckpt: Path, device: str, frames: int) -> dict[str, Any]:
    from worldloom.runtime.loading import load
    from worldloom.serve.bench_ws import ws_bench

    res = ws_bench(load(ckpt, device=device, precision="bf16" if device == "cuda" else "fp32"), frames=frames)
    return {k: v for k, v in res.items() if not isinstance(v, list)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/gpu-check.json")
    ap.add_argument("--work", default="runs/gpu-check")
    ap.add_argument("--minutes", type=float, default=5.0, help="dynamics training budget (default: 5)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="toy sizes (tiny preset, a few steps and frames): CI's dry run")
    a = ap.parse_args()
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here (use --device cpu --tiny for the dry run)")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "torch": torch.__version__, "device": a.device,
                              "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None,
                              "host_cpus": os.cpu_count(), "tiny": a.tiny}
    small, big = ("tiny", "tiny") if a.tiny else ("gpu-small", "gpu")
    frames = 20 if a.tiny else 1000
    step(report, "gpu_tests", gpu_tests)
    step(report, "train_gpu_small", lambda: train(work, small, a.minutes, a.tiny, a.device))
    trained = work / "wm"
    step(report, "speed_128px", lambda: speed_rows(trained, a.device, frames, a.tiny))
    big_ckpt = step(report, "untrained_256px", lambda: {"path": str(untrained(work, big))})
    if big_ckpt:
        step(report, "speed_256px", lambda: speed_rows(Path(big_ckpt["path"]), a.device, frames, a.tiny))
    step(report, "ws_128px", lambda: ws_row(trained, a.device, 30 if a.tiny else 1500))
    if big_ckpt:
        step(report, "ws_256px", lambda: ws_row(Path(big_ckpt["path"]), a.device, 30 if a.tiny else 1500))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))
    bad = [k for k, v in report.items() if isinstance(v, dict) and v.get("ok") is False]
    print(f"gpu-check -> {a.out}" + (f"; failed: {', '.join(bad)}" if bad else "; every stage ran"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
