"""Self-rollout student: trains on the Simulator's own rollouts, grades what the rollout fed the model."""

import dataclasses

import pytest
import torch

from worldloom.runtime.simulator import Simulator, WorldModel
from worldloom.training.distill import DistillRecipe, DistillTask
from worldloom.training.loop import TrainConfig, Trainer

RECIPE = DistillRecipe(context=2, rollout_min=6, rollout_max=7)  # window = the sim's 6


def _data(n_eps=3, T=12, C=8, hw=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    lat = [torch.randn(T, C, hw, hw, generator=g) for _ in range(n_eps)]
    act = [torch.randint(0, 5, (T,), generator=g) for _ in range(n_eps)]
    return lat, act


def _clip(task, B=2):
    return task.batch(torch.Generator().manual_seed(1), B, torch.device("cpu"))


def test_rollout_is_the_simulators(tiny_world):
    lat, act = _data()
    task = DistillTask(tiny_world, lat, act, RECIPE)
    z, a = _clip(task)
    fake, rec = task.rollout(z, a, 5, 0, seed=11)
    sim = Simulator(WorldModel(tiny_world.vae, task.model, {}, tiny_world.action_spec, sim=tiny_world.sim),
                    dataclasses.replace(task.sim_cfg, seed=11), batch=2)
    sim.reset_latents(z[:, :2], a[:, :2])
    ref = torch.stack([sim.step_latent(a[:, i]) for i in range(2, 7)], 1)
    assert torch.equal(fake, ref) and rec.shape == fake.shape


@pytest.mark.parametrize("steps", [1, 2])
def test_graded_pass_reproduces_the_rollout_input(tiny_world, steps):
    """Graded frames get the rollout's own inputs; the more window context a frame has, the closer its x0 to the
    rollout's (the cache's keys also carry history from before the window, so only nearly equal)."""
    lat, act = _data()
    task = DistillTask(tiny_world, lat, act, dataclasses.replace(RECIPE, student_steps=steps))
    z, a = _clip(task)
    g = task.graded(task.model, z, a, depth=6, step=steps - 1, seed=3)
    assert g["x0"].shape == g["truth"].shape == (2, 6, 8, 16, 16)
    assert g["x0"].requires_grad and not g["fake"].requires_grad  # one gradient pass; the rollout is detached
    if steps == 1:  # x0 of the one step is the generated frame itself
        err = [float((g["x0"][:, j].detach() - g["fake"][:, j]).abs().max()) for j in range(6)]
        assert err == sorted(err, reverse=True) and err[-1] < 0.1 * err[0] and err[-1] < 1e-2, err


def test_training_moves_the_student_not_the_teacher(tiny_world, tmp_path):
    lat, act = _data()
    teacher_before = {k: v.clone() for k, v in tiny_world.dit.state_dict().items()}
    task = DistillTask(tiny_world, lat, act, dataclasses.replace(RECIPE, w_teacher=0.5, teacher_steps=2))
    tr = Trainer(task, TrainConfig(steps=2, batch_size=2, lr=1e-3, warmup=1, precision="fp32", log_every=1,
                                   ckpt_every=100), tmp_path, progress=False)
    last = tr.train()
    assert {"loss_true", "loss_teacher", "rollout_mse", "depth"} <= set(last)
    assert all(torch.equal(v, tiny_world.dit.state_dict()[k]) for k, v in teacher_before.items())
    assert any(not torch.equal(v, task.model.state_dict()[k]) for k, v in teacher_before.items())


def test_bad_recipes_are_clear_errors(tiny_world):
    lat, act = _data()
    with pytest.raises(ValueError, match="rollout_min"):
        DistillTask(tiny_world, lat, act, dataclasses.replace(RECIPE, window=4, rollout_min=3))
    with pytest.raises(ValueError, match="sim window"):
        DistillTask(tiny_world, lat, act, dataclasses.replace(RECIPE, window=7, rollout_min=7))
    with pytest.raises(ValueError, match="flow_snap.*pred 'v'"):
        DistillTask(tiny_world, lat, act, dataclasses.replace(RECIPE, flow_snap=0.3))
    with pytest.raises(ValueError, match=r"flow_snap must be in \[0, 0.5\]"):
        DistillTask(tiny_world, lat, act, dataclasses.replace(RECIPE, flow_snap=0.7))
    noisy = dataclasses.replace(tiny_world, sim=dataclasses.replace(tiny_world.sim, context_noise=0.1))
    with pytest.raises(ValueError, match="context_noise"):
        DistillTask(noisy, lat, act, RECIPE)
    with pytest.raises(ValueError, match="frames"):
        DistillTask(tiny_world, [l[:8] for l in lat], act, RECIPE)
