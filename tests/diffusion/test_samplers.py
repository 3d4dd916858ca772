"""Flow matching: noise/velocity identities, sampler grid, exact integration of a straight flow."""

import torch

from worldloom.diffusion import EulerSampler, add_noise, sample_train_t, velocity_target
from worldloom.diffusion.schedules import x0_from_v


def test_noise_and_velocity_identities():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 5, 5, generator=g), torch.randn(2, 3, 4, 5, 5, generator=g)
    t = torch.rand(2, 3, generator=g)
    xt = add_noise(x0, eps, t)
    v = velocity_target(x0, eps)
    assert torch.allclose(x0_from_v(xt, v, t[..., None, None, None]), x0, atol=1e-6)
    assert torch.allclose(add_noise(x0, eps, torch.zeros(2, 3)), x0)


def test_sampler_recovers_x0_with_the_true_velocity():
    """With the exact velocity of a straight flow, any number of Euler steps lands on x0."""
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    for n in (1, 2, 4, 16):
        s = EulerSampler(n, shift=3.0)
        assert s.timesteps[0] == 1 and s.timesteps[-1] == 0 and len(s.timesteps) == n + 1
        x = eps.clone()
        for i in range(n):
            x = s.step(velocity_target(x0, eps), i, x)
        assert torch.allclose(x, x0, atol=1e-5)


def test_train_t_in_range_and_seeded():
    a = sample_train_t((1000,), 1.0, torch.Generator().manual_seed(0))
    b = sample_train_t((1000,), 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and 0 < a.min() and a.max() < 1
    assert sample_train_t((1000,), 3.0, torch.Generator().manual_seed(0)).mean() > a.mean()


def test_sampler_can_start_below_pure_noise():
    s = EulerSampler(4, t_max=0.5)
    assert abs(float(s.timesteps[0]) - 0.5) < 1e-6 and s.timesteps[-1] == 0
    import pytest

    with pytest.raises(ValueError, match="t_max"):
        EulerSampler(2, t_max=0.0)
