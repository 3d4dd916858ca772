"""Shared fixtures: tiny models on CPU with one thread (the suite shares 2 cores)."""

import pytest
import torch

torch.set_num_threads(1)
torch.set_flush_denormal(True)


@pytest.fixture
def tiny_world():
    """An untrained, tiny world model (VAE + DiT) for the arena's ActionSpec."""
    from worldloom.envs.arena import ARENA_ACTIONS
    from worldloom.models.dit import CausalDiT, DynamicsConfig
    from worldloom.models.vae import VAE, VAEConfig
    from worldloom.runtime.simulator import SimConfig, WorldModel

    torch.manual_seed(0)
    vae = VAE(VAEConfig(width=16, blocks=1)).eval()
    dit = CausalDiT(DynamicsConfig(dim=32, depth=2, heads=2, max_frames=8)).eval()
    with torch.no_grad():  # leave adaLN-Zero's identity start so outputs depend on every input
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    config = {"kind": "worldmodel", "env": "arena", "env_kwargs": {}}
    return WorldModel(vae, dit, config, ARENA_ACTIONS, sim=SimConfig(steps=2, window=6))
