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


@pytest.fixture
def tiny_ckpt(tiny_world, tmp_path):
    """``tiny_world`` saved as a checkpoint directory (what CLI commands and ``load`` take)."""
    from dataclasses import asdict

    from worldloom.checkpoint import save_checkpoint

    m = tiny_world
    config = {"kind": "worldmodel", "vae": asdict(m.vae.cfg), "dynamics": asdict(m.dit.cfg), "sim": asdict(m.sim),
              "action_spec": m.action_spec.to_dict(), "env": "arena", "env_kwargs": {"view": 64}, "fps": 15}
    return save_checkpoint(tmp_path / "wm", config, {"vae": m.vae, "dit": m.dit}, card="# tiny\n")
