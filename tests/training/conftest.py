"""Shared tiny setups for the training tests."""

from types import SimpleNamespace

import pytest
import torch


@pytest.fixture
def memory_episode() -> SimpleNamespace:
    """One 40-frame episode of random latents (8x16x16) with a camera going right 4 px a frame and back, a
    one-block DiT, no-op actions and a place-memory sampler on it (no slot left empty)."""
    from worldloom.memory import Geometry
    from worldloom.models.dit import CausalDiT, DynamicsConfig
    from worldloom.training.memory import MemorySampler

    T = 40
    z = torch.randn(T, 8, 16, 16)
    cam = torch.stack([torch.tensor([4.0 * min(i, T - i) for i in range(T)]), torch.zeros(T)], 1)
    dit = CausalDiT(DynamicsConfig(latent_channels=8, dim=32, depth=1, heads=2, max_frames=8))
    geom = Geometry(frame_size=64, latent_size=16, grid=8)
    ms = MemorySampler("place", [z], geom, frames=2, window=8, poses=[cam], drop=0.0)
    return SimpleNamespace(T=T, z=z, cam=cam, dit=dit, acts=torch.zeros(T, dtype=torch.long), memory=ms)
