"""A patch critic for adversarial post-training of the self-rollout student (``DistillRecipe.w_adv``).

Why: a one-step student fit by regression returns the conditional mean of what it is unsure of. An
object whose next place is uncertain comes out as a blend of its colour and the floor's, and a rollout
feeds that blend back as context, so small objects fade within a few frames (docs/BENCHMARKS.md,
"Objects"). An adversarial term asks instead that each generated frame look like a true one, as
adversarial post-training of one-step video generators does; regression keeps it on the truth's map.

Key choices:
- **Latent frames, no decoder in the loop:** the critic sees the student's x0 latents and the true
  frames' latents, so it adds a few small convolutions to a training step and nothing to play.
- **A patch critic with a local view:** three 3x3 convolutions, so each logit sees 7x7 latent cells
  (28 px on the arena's 4 px cells). It judges whether an object's neighbourhood is crisp, not the
  frame's layout, which regression already pins.
- **Hinge losses and spectral norm:** the usual stable pair for a critic trained from scratch beside a
  generator that starts good; the critic's own Adam (betas 0, 0.99) at a constant rate.
- **A critic-only start** (``DistillRecipe.adv_start``): the generator feels the critic only once it has
  learned to tell the two apart, so its first gradients are not noise.
- Its weights, optimizer state and update count travel in the training state (``Trainer`` asks the task
  for ``state_tensors``), so ``--resume`` continues the same critic. Under DDP each process trains its own
  critic on its own batches and the state keeps rank 0's; FSDP refuses a task with a critic.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ..checkpoint import CheckpointError, load_strict, split_prefix
from .state import load_optimizer_tensors, optimizer_tensors


class PatchCritic(nn.Module):
    """Latent frames (N, C, h, w) -> a realism logit per cell (N, 1, h, w); each sees 7x7 cells around it."""

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(channels, width, 3, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width, 2 * width, 3, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(2 * width, 1, 3, padding=1)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Adversary:
    """A critic and its optimizer: ``update`` trains it on real vs generated frames, ``generator_loss`` grades
    generated frames for the student (its gradient reaches the frames, not the critic)."""

    def __init__(self, channels: int, width: int, lr: float, device: torch.device | str = "cpu") -> None:
        if width < 1 or lr <= 0:
            raise ValueError(f"the critic needs width >= 1 and lr > 0, got {width}, {lr}")
        self.critic = PatchCritic(channels, width).to(device)
        self.opt = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=(0.0, 0.99))
        self.updates = 0

    @staticmethod
    def _frames(z: torch.Tensor) -> torch.Tensor:
        return z.reshape(-1, *z.shape[-3:]).float()  # (..., C, h, w) -> (N, C, h, w)

    def update(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """One hinge step of the critic on real (..., C, h, w) against generated frames (detached here)."""
        self.critic.train().requires_grad_(True)
        with torch.autocast(real.device.type, enabled=False):  # a small net: fp32 keeps spectral norm's power step exact
            d_real = self.critic(self._frames(real.detach()))
            d_fake = self.critic(self._frames(fake.detach()))
            loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.updates += 1
        return {"adv_critic": float(loss.detach()), "adv_real": float(d_real.mean().detach()),
                "adv_fake": float(d_fake.mean().detach())}

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """The student's adversarial loss on its frames (..., C, h, w): minus the critic's mean logit."""
        self.critic.eval().requires_grad_(False)  # eval: no power-iteration step on the student's pass
        with torch.autocast(fake.device.type, enabled=False):
            return -self.critic(self._frames(fake)).mean()

    # --- training state ------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        t = {f"critic.{k}": v for k, v in self.critic.state_dict().items()}
        t.update({f"opt.{k}": v for k, v in optimizer_tensors(self.opt).items()})
        t["updates"] = torch.tensor(self.updates)
        return t

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], where: str) -> None:
        if "updates" not in tensors:
            raise CheckpointError(f"{where}: the training state has no critic (saved by a run without w_adv); resume it "
                                  "with the recipe it was saved with, or start afresh")
        load_strict(self.critic, split_prefix(tensors, "critic."), where=where)
        load_optimizer_tensors(self.opt, split_prefix(tensors, "opt."))
        self.updates = int(tensors["updates"])
