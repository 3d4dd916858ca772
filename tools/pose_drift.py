"""How far place memory's run-time pose drifts from the simulator's camera on free play, per pose source.

    .venv/bin/python tools/pose_drift.py CHECKPOINT DATA [--episodes 12] [--horizon 256] [--odometry-data TRAIN]

Each episode of DATA (collected with the env's own policy, walls and balls included) gives 4 true context
frames; the model then generates ``--horizon`` frames under the episode's actions with its window alone
(so every pose source sees the same frames). The real place-memory policy reads its pose from those
latents twice: from the shifts the frames show (``frames``) and from the actions through the checkpoint's
odometry (``actions``; ``--odometry-data`` fits one from a training set, for a checkpoint that has none).
Printed: the error (px, the larger axis) against the true camera's motion since the last context frame, as
quartiles over episodes at several horizons. The persistence probes never touch a wall and only accept
round trips the truth retraces, so this is the pose's error where play is not so kind.
"""
from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--episodes", type=int, default=12)
    ap.add_argument("--horizon", type=int, default=256)
    ap.add_argument("--odometry-data", default=None, help="fit the odometry from this dataset (default: the checkpoint's)")
    a = ap.parse_args()

    from dataclasses import replace

    import torch

    import worldloom
    from worldloom.data.format import Dataset
    from worldloom.memory import PlaceMemory
    from worldloom.memory.odometry import fit_dataset
    from worldloom.runtime.simulator import Simulator

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    model = worldloom.load(a.checkpoint)
    ds = Dataset.open(a.data)
    if "camera" not in ds.state_keys:
        raise SystemExit(f"{a.data}: its episodes record no 'camera' state to score a pose against")
    odometry = fit_dataset(Dataset.open(a.odometry_data)) if a.odometry_data else model.odometry
    if odometry is None:
        raise SystemExit(f"{a.checkpoint} has no odometry (config.json: odometry); give --odometry-data")
    marks = [h for h in (8, 32, 128, 256, 512) if h <= a.horizon]
    errors: dict[str, list[list[float]]] = {"frames": [], "actions": []}
    for i in range(min(a.episodes, len(ds))):
        ep = ds[i]
        if len(ep) < 4 + a.horizon:
            raise SystemExit(f"{a.data}: episode {i} has {len(ep)} frames, fewer than 4 + --horizon {a.horizon}")
        sim = Simulator(model, memory="window")
        sim.reset(np.array(ep.frames[:4]), np.array(ep.actions[:4]))
        with torch.inference_mode():
            ctx = model.vae.encode(torch.as_tensor(np.array(ep.frames[:4]))).float()  # (4, C, h, w), as reset encodes them
        pols = {k: PlaceMemory(pose=k) for k in errors}
        for p in pols.values():
            p.reset(1, replace(sim.geometry, odometry=odometry))
        zs = []
        for t in range(4, 4 + a.horizon):
            sim.step(int(ep.actions[t]))
            zs.append(sim.latent.clone())
        cam = np.asarray(ep.state["camera"], np.float64)
        for k, p in pols.items():
            poses = []
            for j in range(4):
                p.observe(j, ctx[j][None], None if j == 0 else torch.tensor([int(ep.actions[j])]))
            p0 = p.pose[0].clone()
            for j, z in enumerate(zs):
                p.observe(4 + j, z, torch.tensor([int(ep.actions[4 + j])]))
                poses.append((p.pose[0] - p0).numpy())
            errors[k].append([float(np.abs(poses[h - 1] - (cam[3 + h] - cam[3])).max()) for h in marks])
        print(f"episode {i}: " + "; ".join(f"{k} {e[-1][-1]:.0f} px" for k, e in errors.items()) + f" at h = {marks[-1]}", flush=True)
    print(f"pose error, px (larger axis), quartiles over {len(errors['frames'])} episodes of {a.data}:")
    for k, e in errors.items():
        q = np.percentile(np.array(e), [25, 50, 75], axis=0)  # (3, H)
        print(f"  {k:8s} " + "  ".join(f"h={h}: {q[0, j]:.0f} / {q[1, j]:.0f} / {q[2, j]:.0f}" for j, h in enumerate(marks)))


if __name__ == "__main__":
    main()
