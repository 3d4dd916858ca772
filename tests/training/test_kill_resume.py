"""kill -9 at random points of a training run, 50 times: every --resume continues bit for bit or refuses.

Each run is a forked child (no fresh interpreter: torch is already imported), saving its state every step,
so the random kill lands inside a checkpoint write often; the resume runs in another child.
"""

import json
import multiprocessing as mp
import os
import random
import signal
import time

import pytest
import torch

from worldloom.training.loop import Trainer, TrainConfig

STEPS = 40


class Task:
    items_name = "items"

    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.Tanh(), torch.nn.Linear(512, 1))

    def batch(self, gen, n, device):
        x = torch.randn(n, 256, generator=gen)
        return x, x[:, :8].sum(-1, keepdim=True)

    def loss(self, model, b, gen):
        return torch.nn.functional.mse_loss(model(b[0]), b[1]), {}

    def items(self, b):
        return b[0].shape[0]


def _train(run_dir: str) -> None:
    torch.set_num_threads(1)
    cfg = TrainConfig(steps=STEPS, batch_size=8, lr=1e-3, warmup=5, precision="fp32", device="cpu", threads=1,
                      log_every=1, ckpt_every=1)
    try:
        Trainer(Task(), cfg, run_dir, progress=False).fit(resume=True)
    except ValueError as e:  # CheckpointError: a refused state
        with open(os.path.join(run_dir, "refused.txt"), "w") as f:
            f.write(str(e))
        os._exit(3)
    os._exit(0)


def _run(ctx, run_dir, kill_after=None) -> int:
    p = ctx.Process(target=_train, args=(run_dir,))
    p.start()
    if kill_after is not None:
        time.sleep(kill_after)
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
    p.join()
    return p.exitcode


def _final(run_dir):
    from safetensors.torch import load_file

    meta = json.loads(open(os.path.join(run_dir, "train_state.json")).read())
    return meta["step"], load_file(os.path.join(run_dir, meta["weights"]))


@pytest.mark.slow
def test_kill9_during_checkpoint_writes_never_resumes_a_torn_state(tmp_path):
    ctx = mp.get_context("fork")
    ref = str(tmp_path / "ref")
    t0 = time.perf_counter()
    assert _run(ctx, ref) == 0
    run_s = time.perf_counter() - t0
    _, ref_t = _final(ref)
    rng = random.Random(0)
    outcomes = {"killed": 0, "continued": 0, "refused": 0}
    for trial in range(50):
        d = str(tmp_path / f"t{trial}")
        code = _run(ctx, d, kill_after=rng.uniform(0.05, run_s))
        outcomes["killed"] += code == -signal.SIGKILL
        code = _run(ctx, d)
        if code == 0:
            step, t = _final(d)
            assert step == STEPS and all(torch.equal(t[k], ref_t[k]) for k in ref_t), f"trial {trial}: not bit for bit"
            steps = [json.loads(line)["step"] for line in open(os.path.join(d, "log.jsonl"))]
            assert steps == list(range(1, STEPS + 1)), f"trial {trial}: log repeats or misses steps"
            assert not [f for f in os.listdir(d) if f.endswith(".tmp")], f"trial {trial}: temp files left"
            outcomes["continued"] += 1
        else:
            msg = open(os.path.join(d, "refused.txt")).read()
            assert "torn" in msg or "sha256" in msg, f"trial {trial}: refused without saying why: {msg}"
            outcomes["refused"] += 1
    assert outcomes["killed"] >= 40, outcomes  # most kills landed mid-run
    assert outcomes["continued"] >= 45, outcomes  # the commit protocol almost never needs to refuse
