"""Speed-up paths (runtime/speed.py) stay close to the fp32 reference; load() applies checkpoint defaults.

Tolerances, on latents of unit scale after one generated frame from the same context and noise:
bf16 weights and activations <= 0.15 max abs (bf16 keeps ~3 significant digits through 2 blocks and
2 sampler steps), int8 dynamic linears <= 0.15, compile <= 1e-4 (same fp32 arithmetic, fused).
"""

import numpy as np
import pytest
import torch

from worldloom.runtime.simulator import Simulator
from worldloom.runtime.speed import accelerate, describe

CTX = np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)


def first_latents(model, n: int = 3) -> torch.Tensor:
    sim = Simulator(model, seed=7)
    sim.reset(CTX, [0, 1, 2, 3])
    return torch.stack([sim.step_latent(a).float() for a in (4, 4, 1)[:n]])


@pytest.mark.parametrize("precision,tol", [("bf16", 0.15), ("int8", 0.15)])
def test_precision_paths_stay_close_to_fp32(tiny_world, precision, tol):
    ref = first_latents(tiny_world)
    fast = accelerate(tiny_world, precision)
    out = first_latents(fast)
    err = (out - ref).abs().max().item()
    assert err <= tol, f"{precision}: max abs latent error {err:.3f} > {tol}"
    assert err > 0  # it really took another path
    sim = Simulator(fast, seed=1)
    sim.reset(CTX, [0] * 4)
    assert sim.step(2).dtype == np.uint8


def test_accelerate_leaves_the_original_alone(tiny_world):
    before = {k: v.clone() for k, v in tiny_world.dit.state_dict().items()}
    fast = accelerate(tiny_world, "bf16")
    assert next(fast.dit.parameters()).dtype == torch.bfloat16 and fast.dit.rope.sp_cos.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in tiny_world.dit.state_dict().values())
    assert all(torch.equal(before[k], v) for k, v in tiny_world.dit.state_dict().items())
    assert describe(fast) == {"precision": "bf16", "vae_precision": "bf16", "compile": False, "channels_last": True}
    assert describe(tiny_world)["precision"] == "fp32"


def test_channels_last_decoder_matches(tiny_world):
    """NHWC decoder: the same frames as NCHW up to float rounding (<= 1 grey level), in the layout it claims."""
    z = torch.randn(2, tiny_world.dit.cfg.latent_channels, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = tiny_world.vae.decode(z)
    fast = accelerate(tiny_world, "fp32", channels_last=True)
    assert fast.vae.channels_last and not tiny_world.vae.channels_last
    assert fast.vae.decoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    out = fast.vae.decode(z)
    assert out.dtype == torch.uint8 and out.shape == ref.shape
    assert (out.int() - ref.int()).abs().max().item() <= 1
    assert not accelerate(tiny_world, "fp32", channels_last=False).vae.channels_last


def test_parameter_count_survives_int8(tiny_world):
    from worldloom.runtime.bench import n_params

    n = sum(p.numel() for p in tiny_world.dit.parameters())
    assert n_params(tiny_world.dit) == n == n_params(accelerate(tiny_world, "int8").dit)


def test_bad_precision_is_an_error(tiny_world):
    with pytest.raises(ValueError, match="precision"):
        accelerate(tiny_world, "fp16")


def test_load_applies_the_checkpoint_speed_default(tiny_world, tmp_path):
    from worldloom.checkpoint import CheckpointError, save_checkpoint
    from worldloom.config import to_dict
    from worldloom.runtime.loading import load

    config = {"kind": "worldmodel", "vae": to_dict(tiny_world.vae.cfg), "dynamics": to_dict(tiny_world.dit.cfg),
              "action_spec": tiny_world.action_spec.to_dict(), "sim": to_dict(tiny_world.sim), "env": "arena",
              "speed": {"precision": "int8", "compile": False}}
    save_checkpoint(tmp_path / "ck", config, {"vae": tiny_world.vae, "dit": tiny_world.dit}, "# tiny\n")
    assert describe(load(tmp_path / "ck"))["precision"] == "int8"
    assert describe(load(tmp_path / "ck", precision="fp32"))["precision"] == "fp32"
    config["speed"] = {"precision": "fp8"}
    save_checkpoint(tmp_path / "bad", config, {"vae": tiny_world.vae, "dit": tiny_world.dit}, "# tiny\n")
    with pytest.raises(CheckpointError, match="fp8"):
        load(tmp_path / "bad")


@pytest.mark.slow
def test_compile_matches_eager(tiny_world):
    ref = first_latents(tiny_world, 2)
    out = first_latents(accelerate(tiny_world, "fp32", compile=True), 2)
    assert (out - ref).abs().max().item() <= 1e-4
