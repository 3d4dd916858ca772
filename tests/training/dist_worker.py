"""A tiny task with blocks, trained by the real Trainer: run by ``test_parallel.py`` under torchrun
(``python -m torch.distributed.run ... dist_worker.py RUN_DIR PARALLEL STEPS UNTIL ACCUM RESUME``) and
in-process for one process. Rank 0 writes the EMA it would export to ``RUN_DIR/ema.safetensors``."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn as nn


class BlockNet(nn.Module):
    """Two residual blocks in a ModuleList (FSDP's shard units), an odd-sized head (uneven shards)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8), nn.Tanh()) for _ in range(2))
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for b in self.blocks:
            h = h + b(h)
        return self.out(h)


class BlockTask:
    items_name = "items"

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = BlockNet()
        self.w = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))

    def batch(self, gen: torch.Generator, batch_size: int, device: torch.device):
        x = torch.randn(batch_size, 6, generator=gen)
        return x.to(device), torch.sin(x @ self.w).to(device)

    def loss(self, model: nn.Module, batch, gen: torch.Generator):
        x, y = batch
        return nn.functional.mse_loss(model(x), y), {}

    def items(self, batch) -> int:
        return batch[0].shape[0]


def train(run_dir: Path, parallel: str, steps: int, until: int, accum: int, resume: bool):
    from worldloom.checkpoint import save_weights
    from worldloom.training.loop import TrainConfig, Trainer

    cfg = TrainConfig(steps=steps, batch_size=4, lr=0.05, warmup=1, precision="fp32", device="cpu", threads=1,
                      log_every=1, ckpt_every=1000, ema_decay=0.9, parallel=parallel, accum=accum)
    tr = Trainer(BlockTask(), cfg, run_dir, progress=False)
    tr.fit(resume=resume, until=until)
    if tr.rank == 0:
        save_weights(run_dir / "ema.safetensors", {k: v.contiguous() for k, v in tr.ema.state_dict().items()})
    return tr


if __name__ == "__main__":
    d, mode, steps, until, accum, resume = sys.argv[1:7]
    train(Path(d), mode, int(steps), int(until), int(accum), resume == "1")
