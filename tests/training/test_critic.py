"""The student's patch critic: it tells crisp frames from blurred ones and its gradient sharpens them.

How the self-rollout student trains and resumes with it: tests/training/test_distill.py."""

import torch
import torch.nn.functional as F

from worldloom.training.critic import Adversary


def _blobs(n: int, seed: int) -> torch.Tensor:
    """Latent-like frames (n, 4, 16, 16): a flat floor with two crisp 3x3 squares of another value."""
    g = torch.Generator().manual_seed(seed)
    z = torch.zeros(n, 4, 16, 16)
    for i in range(n):
        for _ in range(2):
            y, x = torch.randint(0, 13, (2,), generator=g).tolist()
            z[i, :, y : y + 3, x : x + 3] = torch.randn(4, 1, 1, generator=g).sign() * 2
    return z


def _blur(z: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(z, 3, stride=1, padding=1, count_include_pad=False)


def _edges(z: torch.Tensor) -> float:
    return float((z[..., 1:, :] - z[..., :-1, :]).abs().mean() + (z[..., :, 1:] - z[..., :, :-1]).abs().mean())


def test_critic_tells_crisp_from_blurred_and_its_gradient_sharpens():
    torch.manual_seed(0)
    adv = Adversary(4, 16, 2e-3)
    for step in range(60):
        real = _blobs(16, step)
        m = adv.update(real, _blur(_blobs(16, 1000 + step)))
    assert m["adv_real"] > m["adv_fake"] + 0.25 and adv.updates == 60
    held_real, held_fake = _blobs(32, 5000), _blur(_blobs(32, 6000))
    with torch.no_grad():
        assert float(adv.critic(held_real).mean()) > float(adv.critic(held_fake).mean())  # on frames it never saw
    fake = held_fake.clone().requires_grad_(True)
    before = _edges(fake.detach())
    grads = [p.grad.clone() for p in adv.critic.parameters()]  # left by its last update
    opt = torch.optim.SGD([fake], lr=50.0)  # the loss is a mean over 8,192 cells: a large step per cell
    for _ in range(20):  # the student's side: descend the critic's loss on the frames themselves
        opt.zero_grad()
        adv.generator_loss(fake).backward()
        opt.step()
    assert _edges(fake.detach()) > 1.2 * before
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, adv.critic.parameters()))  # the student's pass leaves it be
