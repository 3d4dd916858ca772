"""Does a model keep objects in a world where nothing moves? A probe that isolates attenuation from uncertainty.

    .venv/bin/python tools/still_probe.py CHECKPOINT [--episodes 20] [--steps 1] [--horizon 32]

Each probe is an arena layout (validation seeds, 8,000,000 on) with the agent at rest and the balls
stopped: the true frame never changes, so a model that knows its world holds it exactly under the noop
action, and whatever it loses it loses without any uncertainty about motion. The Simulator is reset on
4 copies of the frame; objects (agent, stopped balls, landmarks) are scored with
:func:`worldloom.eval.objects.score_objects` against the unchanging truth.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the checkpoint's)")
    ap.add_argument("--horizon", type=int, default=32)
    ap.add_argument("--seed", type=int, default=8_000_000)
    a = ap.parse_args()

    import torch

    import worldloom
    from worldloom.envs import make
    from worldloom.eval.objects import score_objects

    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    model = worldloom.load(a.checkpoint)
    frames, states = [], []
    for e in range(a.episodes):
        env = make("arena", **dict(model.config.get("env_kwargs") or {}))
        _, info = env.reset(seed=a.seed + e)
        st = info["state"]
        # Balls stopped where they are, so the scene is still; the camera stays (the agent is at rest).
        env.unwrapped.place(ball_vel=np.zeros_like(st["ball_vel"]))
        obs, _, _, _, info = env.step(0)
        frames.append(obs)
        states.append(info["state"])
    E, N = a.episodes, a.horizon
    ctx = np.stack(frames)[:, None].repeat(4, 1)  # (E, 4, H, W, 3)
    sim = worldloom.Simulator(model, batch=E, **({"steps": a.steps} if a.steps else {}))
    sim.reset(ctx, np.zeros((E, 4), np.int64))
    gen = sim.rollout(np.zeros((E, N), np.int64))  # (E, N, H, W, 3)
    truth = np.stack(frames)[:, None].repeat(N + 1, 1)
    state = {k: np.stack([np.asarray(s[k], np.float32) for s in states])[:, None].repeat(N + 1, 1) for k in states[0]}
    res = score_objects({"model": gen}, truth, state)
    out = {"checkpoint": a.checkpoint, "steps": sim.cfg.steps, "episodes": E}
    for kind in res["kinds"]:
        p = res["scores"]["model"][kind]["seen"]["permanence"]
        out[kind] = {f"h{h}": None if p[h - 1] is None else round(p[h - 1], 3) for h in (1, 2, 4, 8, 16, 32) if h <= N}
    out["false_objects"] = res["false_objects"]["model"]
    out["exact_frames"] = float((gen == truth[:, 1:]).all(axis=(2, 3, 4)).mean())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
