"""Self-rollout student: trains on the Simulator's own rollouts, grades what the rollout fed the model."""

import dataclasses
import json

import pytest
import torch

from worldloom.checkpoint import CheckpointError
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


def test_bad_critic_settings_are_clear_errors(tiny_world):
    lat, act = _data()
    with pytest.raises(ValueError, match="w_adv and adv_start"):
        DistillTask(tiny_world, lat, act, dataclasses.replace(RECIPE, w_adv=-1.0))
    with pytest.raises(ValueError, match="width >= 1 and lr > 0"):
        DistillTask(tiny_world, lat, act, dataclasses.replace(RECIPE, w_adv=0.1, adv_lr=0.0))


def _trainer(task, run_dir, steps):
    return Trainer(task, TrainConfig(steps=steps, batch_size=2, lr=1e-3, warmup=1, precision="fp32", log_every=1,
                                     ckpt_every=2), run_dir, progress=False)


def test_student_feels_the_critic_after_its_start_and_resumes_it(tiny_world, tmp_path):
    lat, act = _data()
    recipe = dataclasses.replace(RECIPE, w_adv=0.1, adv_start=1, adv_width=8)
    task = DistillTask(tiny_world, lat, act, recipe)
    tr = _trainer(task, tmp_path / "run", 2)
    tr.fit()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert "loss_adv" not in log[0] and "adv_critic" in log[0]  # step 1: the critic's start only
    assert "loss_adv" in log[1] and task.adversary.updates == 2
    saved = {k: v.clone() for k, v in task.adversary.critic.state_dict().items()}

    again = DistillTask(tiny_world, lat, act, recipe)
    assert not all(torch.equal(v, again.adversary.critic.state_dict()[k]) for k, v in saved.items())
    assert _trainer(again, tmp_path / "run", 2).load_state()
    assert again.adversary.updates == 2
    assert all(torch.equal(v, again.adversary.critic.state_dict()[k]) for k, v in saved.items())
    assert again.adversary.opt.state_dict()["state"]  # Adam's moments came back too

    plain = DistillTask(tiny_world, lat, act, RECIPE)
    _trainer(plain, tmp_path / "plain", 2).fit()
    with pytest.raises(CheckpointError, match="no critic"):
        _trainer(DistillTask(tiny_world, lat, act, recipe), tmp_path / "plain", 2).load_state()
