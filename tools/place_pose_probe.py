"""Place memory on the persistence probes: the pose the policy integrates from the model's own latents
against the simulator's camera, and which frames it retrieves on the revisit.

    .venv/bin/python tools/place_pose_probe.py CHECKPOINT [K] [--probes 3]

For each of the persistence suite's first round trips of k frames out and k back (the same seeds), the
Simulator runs with ``memory="place"``; printed per probe: how far the truth's camera went, how far the
pose the policy read from the generated frames went (and where it is at the turn and on return), and
the frame indices the revisit frames attend to (the departure is frame 3).
"""
from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("k", nargs="?", type=int, default=64)
    ap.add_argument("--probes", type=int, default=3)
    a = ap.parse_args()

    import torch

    import worldloom
    from worldloom.eval.causality import make_truth_env
    from worldloom.envs.registry import agent_half_px
    from worldloom.eval.persistence import _DIRS, SEED, _probe
    from worldloom.runtime.simulator import Simulator

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    model = worldloom.load(a.checkpoint)
    env, spec = make_truth_env(model, "persistence"), model.action_spec
    ids = {None: spec.index("noop"), **{d: spec.index(d) for d in _DIRS}}
    got, seed = [], SEED
    while len(got) < a.probes:
        p = _probe(env, seed, a.k, 4, 4, ids, agent_half_px(model.config.get("env")))
        seed += 1
        if p is not None:
            got.append(p)
    for p in got:
        sim = Simulator(model, memory="place")
        sim.reset(p["context"], np.zeros(4, np.int64))
        poses, chosen = [], []
        for act in p["actions"]:
            sim.step_latent(int(act))
            poses.append(sim.memory.pose[0].numpy().copy())
            chosen.append(sim.selection.frames()[0])
        poses = np.array(poses)
        print(f"seed {p['seed']}: true camera went {p['far_px']:.0f} px; the pose read from the model's frames "
              f"went {np.abs(poses).max():.0f} px (at the turn {poses[a.k - 1].tolist()}, on return "
              f"{poses[-1].tolist()}); the revisit attends frames {chosen[-4:]}")


if __name__ == "__main__":
    main()
