"""Training loop: loss goes down, resume continues exactly, LR schedule, checkpoints are safetensors."""

import json

import pytest
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
    assert (tmp_path / "train_state-00000040.safetensors").exists() and json.loads((tmp_path / "train_state.json").read_text())["step"] == 40


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


class TwoLayerTask(LinearTask):
    """The same regression through two linear layers, named '0.' and '1.'."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))


def _moved(task, c, tmp_path):
    before = {n: p.detach().clone() for n, p in task.model.named_parameters()}
    Trainer(task, c, tmp_path, progress=False).train(until=1)
    return {n: (p.detach() - before[n]).abs().max().item() for n, p in task.model.named_parameters()}


def test_lr_scale_trains_the_named_parameters_at_their_own_rate(tmp_path):
    c = {"steps": 10, "warmup": 1, "grad_clip": 0.0, "weight_decay": 0.0}
    plain = _moved(TwoLayerTask(), cfg(**c), tmp_path / "a")
    frozen = _moved(TwoLayerTask(), cfg(**c, lr_scale_prefix="1.", lr_scale=0.0), tmp_path / "b")
    fast = _moved(TwoLayerTask(), cfg(**c, lr_scale_prefix="1.", lr_scale=10.0), tmp_path / "c")
    assert frozen["1.weight"] == 0 and frozen["1.bias"] == 0 and frozen["0.weight"] == pytest.approx(plain["0.weight"])
    # Adam's first step is lr * sign(grad) per element: ten times the schedule's lr moves them ten times as far
    assert fast["1.bias"] == pytest.approx(10 * plain["1.bias"], rel=1e-4) and fast["0.bias"] == pytest.approx(plain["0.bias"])


def test_lr_scale_resumes_exactly_and_a_prefix_naming_nothing_is_an_error(tmp_path):
    c = cfg(lr_scale_prefix="1.", lr_scale=3.0)
    full = Trainer(TwoLayerTask(), c, tmp_path / "a", progress=False)
    full.train()
    Trainer(TwoLayerTask(), c, tmp_path / "b", progress=False).train(until=25)
    resumed = Trainer(TwoLayerTask(), c, tmp_path / "b", progress=False)
    assert resumed.load_state()
    resumed.train()
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match=r"lr_scale_prefix 'mem_copy\.' names no trainable parameter.*\['0\.', '1\.'\]"):
        Trainer(TwoLayerTask(), cfg(lr_scale_prefix="mem_copy."), tmp_path / "c", progress=False)


def test_bf16_autocast_path_trains(tmp_path):
    tr = Trainer(LinearTask(), cfg(precision="bf16"), tmp_path, progress=False)
    assert tr.amp == torch.bfloat16
    assert tr.train()["loss"] < 1.0


# --- the training state commits in one step ------------------------------------------------------


def _same_params(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_kill_between_tensors_and_manifest_resumes_from_the_last_commit(tmp_path, monkeypatch):
    import worldloom.training.loop as loop

    full = Trainer(LinearTask(), cfg(), tmp_path / "a", progress=False)
    full.train()
    real = loop.atomic_write_json

    def killed(path, obj):  # the step-40 tensors are on disk; the process dies before its manifest
        if obj.get("step") == 40:
            raise KeyboardInterrupt
        real(path, obj)

    monkeypatch.setattr(loop, "atomic_write_json", killed)
    part = Trainer(LinearTask(), cfg(), tmp_path / "b", progress=False)
    try:
        part.train()
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(loop, "atomic_write_json", real)
    assert (tmp_path / "b" / "train_state-00000040.safetensors").exists()
    resumed = Trainer(LinearTask(), cfg(), tmp_path / "b", progress=False)
    assert resumed.load_state() and resumed.step == 20  # the committed state, not the torn one
    assert not (tmp_path / "b" / "train_state-00000040.safetensors").exists()  # the orphan is cleaned up
    resumed.train()
    assert _same_params(full.model, resumed.model) and _same_params(full.ema, resumed.ema)
    assert resumed.opt.state_dict()["state"][0]["step"].item() == 40  # the optimizer's count is not off by one


def test_resume_refuses_a_torn_or_corrupt_state(tmp_path):
    import pytest

    from worldloom.checkpoint import CheckpointError

    def run(d, until):
        Trainer(LinearTask(), cfg(ckpt_every=10), d, progress=False).train(until=until)

    run(tmp_path / "x", 20)
    run(tmp_path / "y", 30)
    x = tmp_path / "x"
    meta = json.loads((x / "train_state.json").read_text())
    good = (x / meta["weights"]).read_bytes()

    (x / meta["weights"]).write_bytes(good[:-7])  # truncated
    with pytest.raises(CheckpointError, match="sha256.*torn"):
        Trainer(LinearTask(), cfg(), x, progress=False).load_state()

    other = tmp_path / "y" / "train_state-00000030.safetensors"  # a whole file, but of another step
    (x / meta["weights"]).write_bytes(other.read_bytes())
    import hashlib

    meta2 = dict(meta, sha256=hashlib.sha256(other.read_bytes()).hexdigest())
    (x / "train_state.json").write_text(json.dumps(meta2))
    with pytest.raises(CheckpointError, match="holds step 30.*says 20"):
        Trainer(LinearTask(), cfg(), x, progress=False).load_state()

    (x / meta["weights"]).unlink()
    with pytest.raises(CheckpointError, match="not in"):
        Trainer(LinearTask(), cfg(), x, progress=False).load_state()


def test_resume_trims_the_log_and_removes_temp_files(tmp_path):
    Trainer(LinearTask(), cfg(), tmp_path, progress=False).train(until=25)  # state at 25, log 10, 20
    with open(tmp_path / "log.jsonl", "a") as f:  # a killed session logged step 30, then tore a line
        f.write(json.dumps({"step": 30, "loss": 1.0}) + '\n{"step": 4')
    (tmp_path / ".train_state-00000030.safetensors.abc.tmp").write_bytes(b"half")
    resumed = Trainer(LinearTask(), cfg(), tmp_path, progress=False)
    assert resumed.load_state() and resumed.step == 25
    assert not list(tmp_path.glob("*.tmp"))
    resumed.train()
    steps = [json.loads(l)["step"] for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30, 40]


def test_resume_without_a_state_says_so(tmp_path, capsys):
    Trainer(LinearTask(), cfg(steps=5), tmp_path, progress=False).fit(resume=True)
    assert "no training state" in capsys.readouterr().err


def test_resume_without_a_state_drops_the_killed_sessions_log(tmp_path):
    (tmp_path / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 9.0}) + "\n")  # killed before its first save
    Trainer(LinearTask(), cfg(steps=20, log_every=10), tmp_path, progress=False).fit(resume=True)
    steps = [json.loads(l)["step"] for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [10, 20]


def test_a_fresh_run_in_an_old_run_dir_replaces_it(tmp_path, capsys):
    """Without --resume, the earlier run's log and state go before the first step: the log holds the new
    run's steps alone, and a --resume after a crash before its first save cannot pick up the old state."""
    Trainer(LinearTask(), cfg(), tmp_path, progress=False).fit()  # the earlier run: state at 40, log 10..40
    fresh = Trainer(LinearTask(), cfg(steps=15, ckpt_every=100), tmp_path, progress=False)
    fresh.fit(until=15)  # stops at 15, its one save (ckpt_every 100)
    assert "fresh run replaces" in capsys.readouterr().err
    steps = [json.loads(l)["step"] for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [10, 15]
    assert [p.name for p in tmp_path.glob("train_state-*")] == ["train_state-00000015.safetensors"]
    again = Trainer(LinearTask(), cfg(steps=15), tmp_path, progress=False)
    assert again.load_state() and again.step == 15  # the fresh run's, not the earlier run's 40


def test_accumulation_sums_the_micro_batches_gradients(tmp_path):
    """accum=2: the step's gradient is the mean of its two micro-batches' gradients (each drawn as the loop
    documents), and the logged loss their mean loss."""
    tr = Trainer(LinearTask(), cfg(accum=2, batch_size=8), tmp_path, progress=False)
    loss, _, items = tr._accumulate()
    got = [p.grad.clone() for p in tr.model.parameters()]
    ref = LinearTask()
    losses, grads = [], []
    for i in range(2):
        gen = torch.Generator().manual_seed(hash((0, 0, i)) & 0x7FFFFFFF)  # (seed, step, rank * accum + i)
        ref.model.zero_grad()
        li = ref.loss(ref.model, ref.batch(gen, 8, "cpu"), gen)[0]
        li.backward()
        losses.append(li.item())
        grads.append([p.grad.clone() for p in ref.model.parameters()])
    for g, a, b in zip(got, *grads):
        assert torch.allclose(g, (a + b) / 2, atol=1e-6)
    assert items == 16 and abs(loss.item() - sum(losses) / 2) < 1e-6


def test_bad_accumulation_and_uncheckpointable_models_are_errors(tmp_path):
    with pytest.raises(ValueError, match="accum"):
        Trainer(LinearTask(), cfg(accum=0), tmp_path, progress=False)
    with pytest.raises(ValueError, match="checkpointing.*Linear"):
        Trainer(LinearTask(), cfg(checkpointing=True), tmp_path, progress=False)


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    from worldloom.models.dit import CausalDiT, DynamicsConfig

    torch.manual_seed(0)
    dit = CausalDiT(DynamicsConfig(latent_channels=4, latent_size=8, patch=2, dim=32, depth=3, heads=2, max_frames=4,
                                   prev_halo=1, conv=3, pred="delta"))
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # adaLN-Zero starts as the identity: exercise every path
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(2, 4, 4, 8, 8, generator=g), torch.rand(2, 4, generator=g)
    a = torch.zeros(2, 4, dtype=torch.long)
    out = []
    for on in (False, True):
        dit.zero_grad()
        dit.set_checkpointing(on)
        loss = dit(x, t, a, ctx=x, ctx_t=t).square().mean()
        loss.backward()
        out.append((loss.item(), [p.grad.clone() for p in dit.parameters()]))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-6)
    for a_, b_ in zip(out[0][1], out[1][1]):
        assert torch.allclose(a_, b_, atol=1e-6)
