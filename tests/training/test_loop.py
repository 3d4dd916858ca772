"""Training loop: loss goes down, resume continues exactly, LR schedule, checkpoints are safetensors."""

import json

import torch

from worldloom.training.loop import Trainer, TrainConfig, lr_at


class LinearTask:
    """y = 3x - 1 with a tiny linear model: cheap, and exact numbers to compare."""

    items_name = "items"

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(4, 1)

    def batch(self, gen, batch_size, device):
        x = torch.randn(batch_size, 4, generator=gen)
        return x.to(device), (3 * x.sum(-1, keepdim=True) - 1).to(device)

    def loss(self, model, batch, gen):
        x, y = batch
        loss = torch.nn.functional.mse_loss(model(x), y)
        return loss, {}

    def items(self, batch):
        return batch[0].shape[0]


def cfg(**kw):
    base = dict(steps=40, batch_size=16, lr=0.3, warmup=5, min_lr_ratio=0.3, precision="fp32", device="cpu", log_every=10, ckpt_every=20)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_decreases_and_logs(tmp_path):
    tr = Trainer(LinearTask(), cfg(), tmp_path, progress=False)
    first = tr.task.loss(tr.model, tr.task.batch(torch.Generator().manual_seed(0), 64, tr.device), None)[0].item()
    last = tr.train()
    assert last["loss"] < 0.1 * first
    lines = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [10, 20, 30, 40] and "items_per_s" in lines[0]
    assert (tmp_path / "train_state.safetensors").exists()


def test_resume_continues_exactly(tmp_path):
    full = Trainer(LinearTask(), cfg(), tmp_path / "a", progress=False)
    full.train()
    part = Trainer(LinearTask(), cfg(), tmp_path / "b", progress=False)
    part.train(until=25)  # an interrupted session: stops after step 25 with its state saved
    resumed = Trainer(LinearTask(), cfg(), tmp_path / "b", progress=False)
    assert resumed.load_state() and resumed.step == 25
    resumed.train()
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    for a, b in zip(full.ema.parameters(), resumed.ema.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_lr_schedule_warmup_then_cosine():
    c = cfg(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, c) == 0.1 and abs(lr_at(9, c) - 1.0) < 1e-9
    assert abs(lr_at(100, c) - 0.1) < 1e-9
    assert all(lr_at(i, c) >= lr_at(i + 1, c) for i in range(10, 100))


def test_bf16_autocast_path_trains(tmp_path):
    tr = Trainer(LinearTask(), cfg(precision="bf16"), tmp_path, progress=False)
    assert tr.amp == torch.bfloat16
    assert tr.train()["loss"] < 1.0
