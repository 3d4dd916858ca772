"""Few-step student by self-rollout training (``worldloom distill``).

The student starts as a copy of a trained world model (the teacher) and is fine-tuned for the exact
sampler it will run with (1 or 2 steps) on its **own** KV-cached rollouts, as Self-Forcing does:
train-time inputs then match run-time inputs, so errors stop compounding over long rollouts.

Each training step:
1. draw clips of true latents and actions; the student rolls out ``depth`` frames from ``context``
   true frames through the same :class:`~worldloom.runtime.simulator.Simulator` that play and eval
   use (no gradient), with a depth drawn in ``[rollout_min, rollout_max]`` so the graded frames sit
   deep inside rollouts whose whole window is generated;
2. one sampler step index is drawn per training step (uniform over the student's steps) and the
   input the sampler fed the model at that step is kept for every generated frame;
3. a single gradient pass grades the last ``window`` generated frames: the two-stream forward of
   training, its context stream holding the frames the rollout itself produced. Only that pass has
   a gradient (Self-Forcing's truncation: earlier denoising steps and the cache are detached).

Targets. ``w_true``: the simulator's own frame at that step (the dataset is action-labelled and the
world deterministic given the actions, so the truth is known; this is what keeps a 512-frame rollout
on the map). ``w_teacher``: the frozen teacher's ``teacher_steps``-step sample from the same noise in
the same generated context: distillation proper, on the student's own states. Measured on arena
(docs/BENCHMARKS.md): the truth alone, after 300 steps, lifted PSNR at h = 512 from 9.2 to 18.4 dB
but its frames regressed to the mean and it followed only 37 % of moving steps (teacher 81 %);
the default blend (0.25 truth + 1.0 teacher, 4 teacher steps: one step ahead as good as 2, 26.6 dB,
and better than 16, 25.9 dB and 82 vs 87 % following) keeps the teacher's action following and
still removes much of the drift.

``w_adv``: an adversarial term from a patch critic on the graded latents (``training/critic.py``), for
samples that stay sharp where regression gives a mean. On the arena (docs/BENCHMARKS.md, "Objects",
twentieth session) it left balls where they were at 0.05 and cost landmarks and PSNR at 0.2: the balls
are lost to motion the model does not make, not to blur, so the recipes leave it at 0.

Context noise must be 0 in the sim config (what arena uses): the context stream of the graded pass
is then exactly what the cache held.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import doc, to_dict
from ..data.format import Dataset
from ..diffusion.samplers import EulerSampler
from ..diffusion.schedules import x0_from_v
from ..memory.policies import MEMORIES
from ..models.dit import CausalDiT, check_flow_snap
from ..models.dit_memory import MemoryFrames
from .critic import Adversary
from .cell_losses import object_weights
from .dynamics import ClipSampler
from .init import init_from
from .latents import dataset_latents
from .loop import TrainConfig, Trainer


@dataclass
class DistillRecipe:
    student_steps: int = doc(1, "sampler steps per frame the student is trained for (1 or 2)")
    context: int = doc(4, "true frames every self-rollout starts from")
    rollout_min: int = doc(8, "fewest frames the student generates per rollout (>= window)")
    rollout_max: int = doc(24, "most frames the student generates per rollout (depth is drawn uniformly)")
    window: int = doc(0, "last generated frames graded by the gradient pass (0 = the sim window, so the last one "
                         "sees the frames it saw in the rollout)")
    w_true: float = doc(0.25, "weight of the clean-frame loss against the simulator's frame (anti-drift)")
    w_teacher: float = doc(1.0, "weight of the clean-frame loss against the teacher's many-step sample (keeps motion sharp)")
    teacher_steps: int = doc(4, "sampler steps of the teacher's target (used when w_teacher > 0)")
    object_weight: float = doc(0.0, "extra weight on latent cells the true previous frame, moved, does not explain "
                                    "(training.cell_losses.object_weights); 0 = whole-frame losses")
    object_tau: float = doc(0.5, "residual at which a cell gets the whole extra weight (as DynamicsRecipe)")
    memory: str = doc("none", choices=("none", *(m for m in MEMORIES if m != "window")), text="the student's long-term memory: its "
                      "rollouts run with this context policy, and the graded frames see what it chose for the last one "
                      "(none: the teacher's policy)")
    memory_slots: int = doc(2, "memory frames per step (with memory)")
    teacher_memory: bool = doc(False, "the teacher's target sees the memory frames the graded pass sees (with memory; "
                                      "for a teacher trained with memory: otherwise it draws its target as if it had none)")
    flow_snap: float | None = doc(None, "the student's DynamicsConfig.flow_snap, in its rollouts and its gradient pass "
                                        "(None: the teacher's)")
    w_adv: float = doc(0.0, "weight of the adversarial loss from a patch critic on the graded frames "
                            "(training.critic; 0 = no critic)")
    adv_lr: float = doc(2e-4, "the critic's learning rate (constant)")
    adv_width: int = doc(64, "the critic's first convolution's channels")
    adv_start: int = doc(20, "critic updates before the student feels the critic (it learns to tell them apart first)")


class DistillTask:
    items_name = "frames"

    def __init__(self, teacher: Any, latents: list[torch.Tensor], actions: list[torch.Tensor], recipe: DistillRecipe) -> None:
        from ..runtime.simulator import WorldModel

        r = recipe = replace(recipe, window=recipe.window or teacher.sim.window)
        if r.student_steps < 1:
            raise ValueError(f"student_steps must be >= 1, got {r.student_steps}")
        if not 1 <= r.window <= teacher.sim.window:
            raise ValueError(f"window {r.window} must be in 1..{teacher.sim.window} (the sim window: a graded frame "
                             f"must not see more past than at run time)")
        if not r.window <= r.rollout_min <= r.rollout_max:
            raise ValueError(f"need window ({r.window}) <= rollout_min ({r.rollout_min}) <= rollout_max ({r.rollout_max})")
        if r.context < 1:
            raise ValueError(f"context must be >= 1 frame, got {r.context}")
        if r.object_weight < 0 or r.object_tau <= 0:
            raise ValueError(f"object_weight must be >= 0 and object_tau > 0, got {r.object_weight}, {r.object_tau}")
        if r.memory != "none" and r.memory_slots < 1:
            raise ValueError(f"memory_slots must be >= 1 with memory {r.memory!r}, got {r.memory_slots}")
        if r.teacher_memory and (r.memory if r.memory != "none" else teacher.sim.memory) in ("window", "none"):
            raise ValueError("teacher_memory needs a memory: set the recipe's memory (the teacher plays with its window alone)")
        if r.flow_snap is not None:
            check_flow_snap(r.flow_snap, teacher.dit.cfg.pred)
        if r.w_adv < 0 or r.adv_start < 0:
            raise ValueError(f"w_adv and adv_start must be >= 0, got {r.w_adv}, {r.adv_start}")
        if teacher.sim.context_noise != 0:
            raise ValueError(f"self-rollout training needs sim context_noise 0, the teacher has {teacher.sim.context_noise}")
        self.recipe = recipe
        self.teacher = teacher.dit.requires_grad_(False).eval()
        self.model: CausalDiT = copy.deepcopy(self.teacher).requires_grad_(True).train()
        if r.flow_snap is not None:  # how the student's head uses its flow; the teacher's targets keep their own
            self.model.cfg = replace(self.model.cfg, flow_snap=r.flow_snap)
        # The student rolls out through the run-time Simulator, sharing the teacher's tokenizer.
        self.world = WorldModel(teacher.vae, self.model, teacher.config, teacher.action_spec, sim=teacher.sim)
        # The student plays with the recipe's memory, else with the teacher's (its sinks too); the teacher's own
        # samples are uncached passes over the window, which never use it.
        mem = {} if r.memory == "none" else {"memory": r.memory, "memory_slots": r.memory_slots, "sink": 0}
        self.sim_cfg = replace(teacher.sim, steps=r.student_steps, context_noise=0.0, **mem)
        self.clips = ClipSampler(latents, actions, r.context + r.rollout_max)
        self._depth = r.rollout_max
        self.adversary = Adversary(self.model.cfg.latent_channels, r.adv_width, r.adv_lr) if r.w_adv > 0 else None

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """What the training state keeps besides the student: the critic, when there is one."""
        return {} if self.adversary is None else self.adversary.state_tensors()

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], where: str) -> None:
        if self.adversary is not None:
            self.adversary.load_state_tensors(tensors, where)

    def batch(self, gen: torch.Generator, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.clips(gen, batch_size, device)

    def rollout(self, z: torch.Tensor, actions: torch.Tensor, depth: int, record_step: int,
                seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Student rollout of ``depth`` frames after the context: (generated, recorded inputs), each (B, depth, C, h, w).

        With memory, ``self.selection`` is left holding the memory frames the last generated frame saw."""
        from ..runtime.simulator import Simulator

        r, B = self.recipe, z.shape[0]
        sim = Simulator(self.world, replace(self.sim_cfg, seed=seed), batch=B)
        sim.record_step = record_step
        sim.reset_latents(z[:, : r.context], actions[:, : r.context])
        gen, rec = [], []
        for i in range(r.context, r.context + depth):
            gen.append(sim.step_latent(actions[:, i]).clone())  # clone: out of inference mode, into autograd
            rec.append(sim.recorded.clone())
        self.selection = sim.selection
        return torch.stack(gen, 1), torch.stack(rec, 1)

    def memory_frames(self, first: int, like: torch.Tensor) -> MemoryFrames | None:
        """The last rollout step's memory choice as the graded pass's memory (times shifted so that ``first``, the
        graded window's first frame, is 0); None without memory. Every graded frame sees the last frame's choice."""
        sel = getattr(self, "selection", None)  # None when the student's policy has no memory slots
        if sel is None:
            return None
        z = sel.latents(like)  # (B, M, C, h, w)
        return MemoryFrames(z, torch.zeros(z.shape[:2], device=like.device),
                            sel.time - first, sel.offset, sel.valid.to(like.device))

    @torch.no_grad()
    def teacher_sample(self, x: torch.Tensor, t0: float, actions: torch.Tensor, ctx: torch.Tensor, prev: torch.Tensor,
                       memory: MemoryFrames | None = None) -> torch.Tensor:
        """The teacher's ``teacher_steps`` Euler sample from x (B, W, C, h, w) at noise t0, every frame in parallel,
        seeing ``memory`` (the graded pass's) when given."""
        s = EulerSampler(self.recipe.teacher_steps, t_max=t0)
        B, W = actions.shape
        zeros = torch.zeros((B, W), device=x.device)
        for i in range(s.steps):
            t = s.timesteps[i].expand(B, W).to(x.device)
            x = s.step(self.teacher(x, t, actions, ctx=ctx, ctx_t=zeros, prev=prev, memory=memory).float(), i, x)
        return x

    def graded(self, model: nn.Module, z: torch.Tensor, actions: torch.Tensor, depth: int, step: int,
               seed: int) -> dict[str, Any]:
        """Roll out ``depth`` frames, then the gradient pass over the last ``window``: x0 (B, W, C, h, w) and its inputs."""
        r = self.recipe
        B, W = z.shape[0], r.window
        fake, x_in = self.rollout(z.float(), actions, depth, step, seed)
        L = r.context + depth
        seq = torch.cat([z[:, : r.context].float(), fake], 1)  # (B, L, C, h, w): what the cache held
        s = L - W  # the graded window: frames s..L-1, all generated
        ctx, prev = seq[:, s:], self.teacher.history(seq[:, s:], before=seq[:, :s])
        t_val = float(EulerSampler(r.student_steps, self.sim_cfg.shift, self.sim_cfg.t_max).timesteps[step])
        t = torch.full((B, W), t_val, device=z.device)
        x, a = x_in[:, -W:], actions[:, s:L]
        # Graded frame j sees the j window frames before it; the last one sees the same frames as in the
        # rollout (whose cached keys also carried older history through the layers, so: nearly the same input).
        memory = self.memory_frames(s, z[0, 0].float())
        v = model(x, t, a, ctx=ctx, ctx_t=torch.zeros((B, W), device=z.device), prev=prev, memory=memory)
        x0 = x0_from_v(x.float(), v.float(), t[..., None, None, None])
        return {"x0": x0, "truth": z[:, s:L].float(), "truth_prev": z[:, s - 1 : L - 1].float(), "fake": fake[:, -W:], "x": x, "t": t_val, "actions": a,
                "ctx": ctx, "prev": prev, "memory": memory}

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        z, actions = batch  # (B, C + rollout_max, ...), (B, C + rollout_max)
        r = self.recipe
        depth = int(torch.randint(r.rollout_min, r.rollout_max + 1, (1,), generator=gen))
        step = int(torch.randint(r.student_steps, (1,), generator=gen))
        seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
        self._depth = depth
        g = self.graded(model, z, actions, depth, step, seed)
        if r.object_weight > 0:  # (B, W, 1, h, w), normalised: the true frames' objects weigh more in both terms
            w = object_weights(torch.cat([g["truth_prev"][:, :1], g["truth"]], 1), r.object_weight, r.object_tau, 2)[:, 1:]
            w = (w / w.mean())[:, :, None]
            mse = lambda a, b: (w * (a - b) ** 2).mean()  # noqa: E731
        else:
            mse = F.mse_loss
        loss_true = mse(g["x0"], g["truth"])
        metrics = {"loss_true": float(loss_true.detach()), "depth": float(depth),
                   "rollout_mse": float(F.mse_loss(g["fake"], g["truth"]))}
        loss = r.w_true * loss_true
        if r.w_teacher > 0:
            target = self.teacher_sample(g["x"], g["t"], g["actions"], g["ctx"], g["prev"],
                                         g["memory"] if r.teacher_memory else None)
            loss_teacher = mse(g["x0"], target)
            metrics["loss_teacher"] = float(loss_teacher.detach())
            loss = loss + r.w_teacher * loss_teacher
        if self.adversary is not None:  # the critic learns on this step's frames, then grades them for the student
            self.adversary.critic.to(g["x0"].device)
            metrics.update(self.adversary.update(g["truth"], g["x0"]))
            if self.adversary.updates > r.adv_start:
                loss_adv = self.adversary.generator_loss(g["x0"])
                metrics["loss_adv"] = float(loss_adv.detach())
                loss = loss + r.w_adv * loss_adv
        return loss, metrics

    def items(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        return batch[1].shape[0] * self._depth  # frames the student generated this step


@dataclass
class DistillResult:
    path: Path
    train_s: float
    last: dict[str, float]


def distill(teacher_path: str | Path, data: str | Path, out: str | Path, recipe: DistillRecipe, train_cfg: TrainConfig,
            *, resume: bool = False, progress: bool = True, recipe_cmd: str = "", run_dir: str | Path | None = None,
            until: int | None = None, init: str | Path | None = None, sim_steps: int | None = None) -> DistillResult:
    """Fine-tune a copy of ``teacher_path`` on its own rollouts of ``data``; writes a world-model checkpoint to ``out``.

    ``init``: start the student from this world model's DiT instead (same architecture), e.g. a
    1-step student trained on for 2 steps against the same teacher. ``sim_steps``: the sampler steps
    the checkpoint runs with by default (default: ``recipe.student_steps``), e.g. 1 for such a
    student, which then serves 1 and 2 steps.
    """
    if sim_steps is not None and sim_steps < 1:
        raise ValueError(f"sim_steps must be >= 1, got {sim_steps}")
    from ..checkpoint import carry_train_logs, resolve, save_checkpoint
    from ..runtime.loading import load
    from ..hardware import setup_cpu

    setup_cpu(train_cfg.threads)  # before encoding too: a 1-thread run must not take both cores while it encodes
    teacher = load(teacher_path, precision="fp32", compile=False)
    ds = Dataset.open(data)
    teacher.action_spec.require_same(ds.action_spec, mine=f"teacher {teacher_path}/config.json", theirs=f"dataset {data}/meta.json")
    if ds.action_spec.n_axes:  # the self-rollout loop below steps discrete actions only
        raise ValueError(f"distill: {data} has continuous axes {[a.name for a in ds.action_spec.axes]}; self-rollout "
                         "distillation takes discrete actions only for now (train the teacher with more sampler steps instead)")
    t_enc = time.time()
    latents, actions, _, _ = dataset_latents(teacher.vae, ds, data)
    t_enc = time.time() - t_enc
    torch.manual_seed(train_cfg.seed)
    task = DistillTask(teacher, latents, actions, recipe)
    init_info = init_from(task.model, init, ds.action_spec, f"dataset {data}/meta.json") if init is not None else None
    trainer = Trainer(task, train_cfg, run_dir or Path(out) / "run", progress=progress)
    last = trainer.fit(resume, until)
    if trainer.rank == 0:
        # A teacher's temporal decoder was trained on the teacher's latents, not the student's: it stays behind.
        config = {k: v for k, v in teacher.config.items()
                  if k not in ("metrics", "speed_applied", "temporal_decoder", "temporal_decoder_train")}
        config["dynamics"] = to_dict(task.model.cfg)  # the student's head use (flow_snap) may differ from the teacher's
        config["sim"] = to_dict(replace(task.sim_cfg, steps=sim_steps or recipe.student_steps))  # with the memory it trained with
        config["distill"] = {"teacher": str(teacher_path), "teacher_recipe_cmd": teacher.config.get("recipe_cmd", ""),
                             "recipe": to_dict(recipe), "train": to_dict(train_cfg), "data": str(data),
                             "train_seconds": round(trainer.elapsed, 1), "encode_seconds": round(t_enc, 1),
                             "trained_steps": trainer.step, **({"init": init_info} if init_info else {})}
        config["recipe_cmd"] = recipe_cmd
        n_params = sum(p.numel() for p in trainer.ema.parameters())
        card = (f"# World model (self-rollout student)\n\n{recipe.student_steps}-step student ({n_params / 1e6:.2f} M "
                f"parameters) fine-tuned from `{teacher_path}` on its own KV-cached rollouts of `{data}` "
                f"({ds.n_frames} frames).\n\n- {trainer.step} of {train_cfg.steps} steps x {train_cfg.batch_size} "
                f"rollouts of {recipe.rollout_min}-{recipe.rollout_max} frames, {trainer.elapsed / 60:.1f} min\n"
                f"- weights: float16 on disk (half the file), float32 when loaded\n"
                f"- recipe: `{recipe_cmd}`\n- teacher: `{teacher.config.get('recipe_cmd', '')}`\n")
        save_checkpoint(out, config, {"vae": teacher.vae, "dit": trainer.ema.cpu().float()}, card, dtype=torch.float16)
        carry_train_logs(out, (resolve(teacher_path), None if init is None else resolve(init)), ("distill", trainer.log_path))
        from ..runtime.context import copy_context

        copy_context(resolve(teacher_path), out)
    return DistillResult(Path(out), trainer.elapsed, last)


# The arena student's schedule: a fine-tune, so a low peak rate, a short warm-up and a fast EMA.
DISTILL_TRAIN = TrainConfig(steps=500, batch_size=16, lr=3e-4, warmup=50, ema_decay=0.99, ckpt_every=50, log_every=10)
