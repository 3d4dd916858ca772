"""Time one training step of the arena recipe's dynamics model (forward + backward + AdamW) on this machine.

    python tools/train_step_bench.py --threads 2 --precision fp32 [--steps 8]

Random latents of the recipe's shape (batch 16 clips of 8 frames, 8x16x16), so it needs no data or
tokenizer; prints the per-step times and their median. Run it on an otherwise idle machine
(docs/BENCHMARKS.md, "One arena training step on this CPU").
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16 = autocast, as training's 'bf16'")
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()
    import torch

    from worldloom.hardware import setup_cpu
    from worldloom.models.dit import CausalDiT
    from worldloom.recipes.arena import DYN_CFG, DYN_RECIPE, DYN_TRAIN
    from worldloom.training.dynamics import DynamicsTask

    setup_cpu(a.threads)
    torch.manual_seed(0)
    dit = CausalDiT(DYN_CFG)
    lat = [torch.randn(300, DYN_CFG.latent_channels, DYN_CFG.latent_size, DYN_CFG.latent_size) for _ in range(4)]
    act = [torch.randint(0, DYN_CFG.n_actions, (300,)) for _ in range(4)]
    task = DynamicsTask(dit, lat, act, DYN_RECIPE)
    opt = torch.optim.AdamW(dit.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        batch = task.batch(gen, DYN_TRAIN.batch_size, torch.device("cpu"))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss, _ = task.loss(dit, batch, gen)
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"threads": a.threads, "precision": a.precision, "batch": DYN_TRAIN.batch_size,
                      "s_per_step": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3)}))


if __name__ == "__main__":
    main()
