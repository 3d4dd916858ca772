"""The one training loop: AdamW, warm-up + cosine, EMA, bf16 autocast, atomic checkpoints, resume, DDP or
FSDP2, gradient accumulation, activation checkpointing and (on CUDA) fused AdamW and ``torch.compile``.

A *task* supplies the model, a batch sampler and the loss; the loop does everything else, the same
for the tokenizer and the dynamics model, on one CPU process or many under ``torchrun``.

Key choices:
- Batches are drawn from a generator seeded by (seed, step, global micro-batch index), so ``--resume``
  continues with exactly the data an uninterrupted run would have seen, and N processes see what one
  process with N x the accumulation sees (tests/training/test_parallel.py holds them to the same loss).
- Training state (weights, EMA, optimizer, step) is safetensors + JSON, never pickle, committed by one
  manifest rename (``state.py``); under ``--train-parallel fsdp`` it is sharded through DCP and
  resumes on any number of processes (``parallel.py``).
- ``precision="auto"`` uses bf16 autocast on CPUs with bf16 support and on CUDA (measured 2-6x
  faster matmuls on this project's Zen 4 CPUs), fp32 elsewhere.
- ``torch.set_flush_denormal(True)``: without it a CPU run slowed 10-20x after ~50 steps here.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
import torch.nn as nn

from ..hardware import bf16_supported, pick_device, setup_cpu

from . import parallel, state
from ..checkpoint import CheckpointError, load_strict, save_weights, split_prefix
from ..config import atomic_write_json, doc, to_dict


@dataclass
class TrainConfig:
    steps: int = doc(1000, "optimizer steps")
    batch_size: int = doc(16, "items per step per process")
    lr: float = doc(1e-3, "peak learning rate")
    min_lr_ratio: float = doc(0.05, "final learning rate as a fraction of the peak (cosine)")
    warmup: int = doc(100, "linear warm-up steps")
    weight_decay: float = doc(0.01, "AdamW weight decay (matrices only)")
    betas: tuple[float, float] = doc((0.9, 0.99), "AdamW betas")
    grad_clip: float = doc(1.0, "gradient norm clip (0 = off)")
    ema_decay: float = doc(0.999, "EMA decay of the weights that get exported")
    precision: str = doc("auto", choices=("auto", "fp32", "bf16"), text="auto | fp32 | bf16 (autocast)")
    device: str = doc("auto", choices=("auto", "cpu", "cuda", "mps"), text="auto | cpu | cuda | mps")
    threads: int = doc(0, "torch intra-op threads on CPU (0 = torch default)")
    seed: int = doc(0, "seed for init and data order")
    log_every: int = doc(25, "steps between log lines")
    ckpt_every: int = doc(500, "steps between training checkpoints")
    log_with: str = doc("none", choices=("none", "tensorboard", "wandb"),
                        text="experiment tracker that also gets every log line (training/tracking.py)")
    lr_scale_prefix: str = doc("", "parameters whose names start with this (e.g. 'mem_copy.') train at lr x lr_scale: a module "
                                   "grown into a trained model learns at its own pace ('' = none)")
    lr_scale: float = doc(1.0, "learning-rate multiplier of the lr_scale_prefix parameters")
    accum: int = doc(1, "micro-batches of batch_size per optimizer step (gradient accumulation)")
    checkpointing: bool = doc(False, "recompute each transformer block in the backward pass (activation checkpointing; "
                                     "models with set_checkpointing only)")
    fused: bool = doc(False, "fused AdamW kernel (CUDA only; the plain one elsewhere)")
    compile: bool = doc(False, "torch.compile the model for training (CUDA only; eager elsewhere)")
    parallel: str = doc("ddp", choices=("ddp", "fsdp"),
                        text="under torchrun: ddp replicates the model; fsdp shards weights, gradients, optimizer and EMA "
                             "(FSDP2) and saves training state with torch.distributed.checkpoint")
    workers: int = doc(0, "DataLoader worker processes streaming the clips, sharded by a DistributedSampler "
                          "(tasks with stream() only); 0 = drawn in the training process from the per-step generator")
    attention: str = doc("auto", choices=("auto", "sdpa", "flex"),
                         text="training attention: flex = FlexAttention block mask, sdpa = boolean mask, auto = flex on "
                              "CUDA and sdpa elsewhere (models with set_attention only)")


class Task(Protocol):
    model: nn.Module
    items_name: str  # what throughput counts, e.g. "img" or "frames"

    def batch(self, gen: torch.Generator, batch_size: int, device: torch.device) -> Any: ...
    def loss(self, model: nn.Module, batch: Any, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]: ...
    def items(self, batch: Any) -> int: ...


def pick_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    return torch.bfloat16 if bf16_supported(device) else None


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: matrices decay, the rest not; with ``cfg.lr_scale_prefix``, its parameters in groups of their
    own whose ``lr_scale`` multiplies the schedule's lr (a prefix that names no parameter is an error)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    pre = cfg.lr_scale_prefix
    if pre and not any(n.startswith(pre) for n, _ in named):
        roots = sorted({n.split(".", 1)[0] + "." for n, _ in named})
        raise ValueError(f"TrainConfig.lr_scale_prefix {pre!r} names no trainable parameter of {type(model).__name__}; "
                         f"its modules: {roots}")
    groups = []
    for scaled, scale in ((False, 1.0), (True, cfg.lr_scale)) if pre else ((False, 1.0),):
        mine = [p for n, p in named if not pre or n.startswith(pre) == scaled]
        groups += [{"params": [p for p in mine if p.ndim >= 2], "weight_decay": cfg.weight_decay, "lr_scale": scale},
                   {"params": [p for p in mine if p.ndim < 2], "weight_decay": 0.0, "lr_scale": scale}]
    return groups


def _dist_info() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


class Trainer:
    """Runs ``task`` for ``cfg.steps`` steps; state lives in ``run_dir``."""

    def __init__(self, task: Task, cfg: TrainConfig, run_dir: str | os.PathLike, progress: bool = True) -> None:
        self.task, self.cfg, self.run_dir = task, cfg, Path(run_dir)
        self.rank, self.world, local = _dist_info()
        setup_cpu(cfg.threads)
        self.device = pick_device(cfg.device)
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
            if self.device.type == "cuda":
                self.device = torch.device("cuda", local)
                torch.cuda.set_device(self.device)
        if cfg.accum < 1:
            raise ValueError(f"TrainConfig.accum must be >= 1, got {cfg.accum}")
        if cfg.workers < 0:
            raise ValueError(f"TrainConfig.workers must be >= 0, got {cfg.workers}")
        if cfg.workers:
            if not hasattr(task, "stream"):
                raise ValueError(f"--train-workers {cfg.workers}: {type(task).__name__} draws its batches in the training "
                                 "process only; use --train-workers 0")
            task.stream(cfg.workers, self.rank, self.world, cfg.seed, cfg.batch_size, cfg.accum)
        self.amp = pick_dtype(cfg.precision, self.device)
        self.model = task.model.to(self.device)
        if cfg.checkpointing:
            if not hasattr(self.model, "set_checkpointing"):
                raise ValueError(f"--train-checkpointing: {type(self.model).__name__} has no blocks to checkpoint")
            self.model.set_checkpointing(True)
        if not hasattr(self.model, "set_attention"):
            if cfg.attention == "flex":
                raise ValueError(f"--train-attention flex: {type(self.model).__name__} has no attention to switch")
        elif cfg.attention == "flex" and self.device.type == "cpu":
            raise ValueError("--train-attention flex: FlexAttention has no backward on CPU; use sdpa (or auto) there")
        else:
            self.model.set_attention(cfg.attention)
        if cfg.parallel not in parallel.MODES:
            raise ValueError(f"TrainConfig.parallel must be one of {parallel.MODES}, got {cfg.parallel!r}")
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.net: nn.Module = self.model
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        self.fsdp = self.world > 1 and cfg.parallel == "fsdp"
        if self.fsdp and getattr(task, "state_tensors", dict)():
            raise ValueError(f"--train-parallel fsdp: {type(task).__name__} trains state of its own (a critic) that the "
                             "sharded training state does not hold; use --train-parallel ddp")
        self._vessel: nn.Module | None = None  # fsdp: the unsharded copy the EMA is gathered into at the end
        if self.fsdp:
            self._vessel = parallel.unsharded_copy(self.ema) if self.rank == 0 else None
            mesh = parallel.device_mesh(self.device, self.world)
            parallel.fully_shard_model(self.model, mesh)
            parallel.fully_shard_model(self.ema, mesh)  # shard for shard with the model
        elif self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        cuda = self.device.type == "cuda"
        if cfg.compile and cuda:  # inductor's compile time outweighs a CPU run's few thousand small steps
            self.net = torch.compile(self.net)
        self.opt = torch.optim.AdamW(_param_groups(self.model, cfg), lr=cfg.lr, betas=cfg.betas,
                                     **({"fused": True} if cfg.fused and cuda else {}))
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions of this run
        self.progress = progress and self.rank == 0
        self.log_path = self.run_dir / "log.jsonl"
        self.tracker, self._tracker_begun = None, False
        if self.rank == 0 and cfg.log_with != "none":  # before any step: a missing package fails now, not at the end
            from .tracking import make_tracker

            self.tracker = make_tracker(cfg.log_with, self.run_dir, {"task": type(task).__name__, **to_dict(cfg)})

    # --- state ----------------------------------------------------------------------------------
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        t = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        t.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        t.update({f"opt.{k}": v for k, v in state.optimizer_tensors(self.opt).items()})
        if hasattr(self.task, "state_tensors"):  # a task's own trained state, e.g. a critic
            t.update({f"task.{k}": v for k, v in self.task.state_tensors().items()})
        return t

    def save_state(self) -> None:
        """Commit the training state: sharded by every rank through DCP (fsdp), else one file from rank 0."""
        if self.fsdp:
            name = state.dcp_dir(self.step)
            parallel.dcp_save(self.run_dir / name, self.model, self.ema, self.opt)
            digest, fmt = (parallel.dcp_digest(self.run_dir / name) if self.rank == 0 else None), "dcp"
        elif self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            name = state.state_file(self.step)
            digest = save_weights(self.run_dir / name, self._state_tensors(), metadata={"step": str(self.step)})
            fmt = "safetensors"
        if self.rank != 0:
            return
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.opt.state_dict()["param_groups"]]
        atomic_write_json(self.run_dir / state.META, {"step": self.step, "weights": name, "sha256": digest, "format": fmt,
                                                      "world_size": self.world, "elapsed_s": self.elapsed,
                                                      "config": to_dict(self.cfg), "param_groups": groups})
        state.clean(self.run_dir, keep=name)

    def load_state(self) -> bool:
        """Resume from ``run_dir`` if it has a committed training state; returns whether it did."""
        found = state.read_committed(self.run_dir)
        if found is None:
            return False
        meta, path, tensors = found
        if tensors is None:  # DCP: saved on any number of processes, resharded to this run's
            parallel.dcp_load(path, self.model, self.ema, self.opt)
        elif self.fsdp:
            raise CheckpointError(f"{path}: a single-file training state (saved with --train-parallel ddp or one process); "
                                  "resume it with --train-parallel ddp, or start the fsdp run afresh")
        else:
            self._load_tensors(meta, path, tensors)
        self.step, self.elapsed = int(meta["step"]), float(meta.get("elapsed_s", 0.0))
        if self.rank == 0:
            state.clean(self.run_dir, keep=path.name)
            state.trim_log(self.log_path, self.step)
        return True

    def _load_tensors(self, meta: dict[str, Any], path: Path, tensors: dict[str, torch.Tensor]) -> None:
        load_strict(self.model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, where=str(path))
        load_strict(self.ema, {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}, where=str(path))
        state.load_optimizer_tensors(self.opt, split_prefix(tensors, "opt."), meta["param_groups"], self.device)
        if hasattr(self.task, "load_state_tensors"):
            self.task.load_state_tensors(split_prefix(tensors, "task."), where=str(path))

    # --- loop -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _update_ema(self) -> None:
        d = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.model.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.ema.buffers(), self.model.buffers()):
            e.copy_(b)

    def _log(self, rec: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.tracker is not None:
            self.tracker.log(int(rec["step"]), rec)

    def train(self, until: int | None = None) -> dict[str, float]:
        """Train to ``cfg.steps`` (or stop early at step ``until``, as an interrupted run would)."""
        cfg = self.cfg
        if self.tracker is not None and not self._tracker_begun:
            self.tracker.begin(self.step)  # from the (resumed) step: what it holds past it is dropped
            self._tracker_begun = True
        stop = cfg.steps if until is None else min(until, cfg.steps)
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.progress, dynamic_ncols=True,
                   file=sys.stderr, mininterval=2.0)
        last: dict[str, float] = {}
        if cfg.workers:
            self.task.start(self.step)  # a streamed task draws next what an uninterrupted run would
        items, t_win = 0, time.perf_counter()
        self.model.train()
        while self.step < stop:
            t0 = time.perf_counter()
            for g in self.opt.param_groups:
                g["lr"] = lr_at(self.step, cfg) * g.get("lr_scale", 1.0)
            self.opt.zero_grad(set_to_none=True)
            loss, metrics, n_items = self._accumulate()
            if cfg.grad_clip > 0:
                metrics["grad_norm"] = parallel.local_float(nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
            self.opt.step()
            self._update_ema()
            self.step += 1
            self.elapsed += time.perf_counter() - t0
            items += n_items * self.world
            logs = self.step % cfg.log_every == 0 or self.step == cfg.steps
            if logs:  # the mean over every process's micro-batches: what one process with accum x world would log
                loss = parallel.mean_over_ranks(loss, self.world)
            last = {"loss": float(loss.item()), **metrics}
            if logs:
                rate = items / max(1e-9, time.perf_counter() - t_win)
                items, t_win = 0, time.perf_counter()
                self._log({"step": self.step, "lr": lr_at(self.step - 1, cfg), "elapsed_s": round(self.elapsed, 1),
                           f"{self.task.items_name}_per_s": round(rate, 1), **last})
                bar.set_postfix(loss=f"{last['loss']:.4f}", **{f"{self.task.items_name}/s": f"{rate:.0f}"})
            bar.update(1)
            if self.step % cfg.ckpt_every == 0 or self.step == stop:
                self.save_state()
        bar.close()
        return last

    def _accumulate(self) -> tuple[torch.Tensor, dict[str, float], int]:
        """Forward and backward ``cfg.accum`` micro-batches; their gradients sum to the mean loss's.

        Returns the mean loss, the last micro-batch's metrics and the items seen. Micro-batch i of a
        step on rank r draws from the generator seeded by (seed, step, r * accum + i): the global micro-batch
        index, so N processes see the batches one process with accum x N sees, and a resumed run sees what
        an uninterrupted one would have."""
        cfg, n = self.cfg, self.cfg.accum
        total, items, metrics = torch.zeros((), device=self.device), 0, {}
        for i in range(n):
            gen = torch.Generator(device="cpu").manual_seed(hash((cfg.seed, self.step, self.rank * n + i)) & 0x7FFFFFFF)
            batch = self.task.batch(gen, cfg.batch_size, self.device)
            # DDP all-reduces (FSDP reduce-scatters) on the last micro-batch only
            if self.fsdp:
                parallel.set_gradient_sync(self.model, i == n - 1)
            with (contextlib.nullcontext() if i == n - 1 or self.ddp is None else self.ddp.no_sync()):
                with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
                    loss, metrics = self.task.loss(self.net, batch, gen)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{self.run_dir}: loss became {loss.item()} at step {self.step + 1}; lower --lr or "
                                             "check the data (the run dir keeps the last saved state)")
                (loss / n).backward()
            total += loss.detach() / n
            items += self.task.items(batch)
        return total, metrics, items

    def fit(self, resume: bool = False, until: int | None = None) -> dict[str, float]:
        """Resume from ``run_dir`` if asked, train (to ``until``), and leave the process group."""
        try:
            if not resume and self.rank == 0:
                state.start_afresh(self.run_dir, self.log_path)
            if resume and not self.load_state() and self.rank == 0:
                print(f"--resume: no training state in {self.run_dir}; starting at step 1", file=sys.stderr)
                state.trim_log(self.log_path, self.step)  # a session killed before its first save may have logged steps
            last = self.train(until)
        except BaseException:
            self._close_tracker()  # the curves so far stay readable; no barrier with ranks that may be gone
            raise
        self.close()
        return last

    def _close_tracker(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None

    def close(self) -> None:
        self._close_tracker()
        if self.fsdp and parallel.is_sharded(self.ema):  # every rank gathers; rank 0 keeps the whole EMA to export
            self.ema = parallel.full_module(self.ema, self._vessel) or self.ema
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            # DDP's reducer holds the group: freed here rather than at interpreter exit, where a gloo group
            # torn down under a finalising interpreter can abort a rank after its work is saved
            self.net = self.model
            self.ddp = None
            gc.collect()
            dist.destroy_process_group()
