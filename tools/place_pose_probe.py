"""Place memory on the persistence probes: the pose the policy integrates from the model's own latents
against the simulator's camera, and which frames it retrieves on the revisit.

    .venv/bin/python tools/place_pose_probe.py CHECKPOINT [K] [--probes 3] [--memory place|place_first] [--true-pose]

For each of the persistence suite's first round trips of k frames out and k back (the same seeds), the
Simulator runs with ``--memory`` (``place`` or ``place_first``); printed per probe: how far the truth's camera went, how far the
pose the policy read went (from the actions where the checkpoint has an odometry, else from the generated frames) (and where it is at the turn and on return), and
the frame indices the revisit frames attend to (the departure is frame 3). Last, the pose error on return
(the true camera is back at its start) and the revisit frames' static PSNR (as the persistence suite scores
them) over all probes. ``--true-pose`` is a diagnostic oracle, never a run-time mode: after each frame the
policy's pose is set to the simulator's camera, so a revisit retrieves the true place; the PSNR then says what
memory gives when the pose is right.
"""
from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("k", nargs="?", type=int, default=64)
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--memory", default="place", choices=("place", "place_first"))
    ap.add_argument("--true-pose", action="store_true", help="oracle: the simulator's camera as the pose (diagnostic)")
    a = ap.parse_args()

    import torch

    import worldloom
    from worldloom.eval.causality import make_truth_env
    from worldloom.eval.persistence import gather_probes, masked_psnr
    from worldloom.runtime.simulator import Simulator

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    model = worldloom.load(a.checkpoint)
    got, _ = gather_probes(model, make_truth_env(model, "persistence"), a.k, a.probes)
    errors, scores = [], []
    for p in got:
        sim = Simulator(model, memory=a.memory, **({"memory_pose": "frames"} if a.true_pose else {}))  # the oracle's pose is then kept
        sim.reset(p["context"], np.zeros(4, np.int64))
        poses, chosen, frames = [], [], []
        for i, act in enumerate(p["actions"]):
            frames.append(sim.step(int(act)))
            poses.append(sim.memory.pose[0].numpy().copy())
            chosen.append(sim.selection.frames()[0])
            if a.true_pose:  # (dx, dy) px, as the policy keeps it
                pose = sim.memory.pose.clone()  # a fresh tensor: the policy's was made under inference mode
                pose[0] = torch.as_tensor(p["camera"][i], dtype=torch.float64)
                sim.memory.pose = pose
        revisit = len(p["mask"])
        scores.append(float(masked_psnr(np.stack(frames[-revisit:]), p["truth"][-revisit:], p["mask"]).mean()))
        poses = np.array(poses)
        print(f"seed {p['seed']}: true camera went {p['far_px']:.0f} px; the pose read from the model's frames "
              f"went {np.abs(poses).max():.0f} px (at the turn {poses[a.k - 1].tolist()}, on return "
              f"{poses[-1].tolist()}); the revisit attends frames {chosen[-4:]}")
        errors.append(float(np.abs(poses[-1]).max()))
    print(f"k={a.k}, {a.memory}{' with the true pose' if a.true_pose else ''}: pose error on return, px, per probe: "
          f"{errors}; revisit static PSNR {np.mean(scores):.2f} dB (per probe {np.round(scores, 1).tolist()})")


if __name__ == "__main__":
    main()
