"""Fidelity suite: PSNR, SSIM and LPIPS of long rollouts against the simulator, per horizon.

Fixed-seed true episodes are played in the checkpoint's own env (``config.json: env``, ``env_kwargs``)
by its collection policy; the Simulator is reset on the first ``context`` true frames and actions and
generates ``max(horizons)`` frames under the true actions that followed. Every generated frame is
scored against the true frame of the same step.

Key choices:

- **Own episodes, fresh seeds.** Episode i uses env and policy seed ``seed + i`` with ``seed`` =
  200000 by default: training data is collected from seed 0, held-out sets from 100000. A seed
  range that overlaps the checkpoint's recorded training seeds is named in the notes.
- **Baselines on the same frames.** Copy-last-frame (the last context frame, repeated) is the floor
  a model must beat; tokenizer reconstruction decode(encode(truth)) the ceiling of what frames
  through this VAE can score.
- **Horizon h is the h-th generated frame** (1-based), averaged over episodes; ``*_mean`` is the mean
  over all frames 1..max(horizons). Curves over every frame go to the plots (log x).
- **LPIPS-AlexNet** (:mod:`~worldloom.eval.lpips`), batched 128 frames at a time; the true frames'
  features are computed once and compared with all three candidates (copy-last: once per
  episode). If the install-time conversion has not run, ``lpips=None`` reports PSNR/SSIM only and
  says so in the notes; ``lpips=True`` makes it an error.
- **Objects** (:mod:`~worldloom.eval.objects`), where the env reports them in its state: permanence,
  position error and false objects of the first ``OBJECT_HORIZON`` generated frames, the same scores
  as the held-out eval's, so that ``bench --mode matrix`` keeps them beside PSNR for every row; and the
  walls' IoU (:mod:`~worldloom.eval.structure`) where the env's registration states a structure colour.
- **Budget.** Generation dominates: the arena checkpoint costs ~117 ms of CPU per frame in a batch
  of 4 (172 ms alone); reconstruction + LPIPS add ~8 s per 512-frame episode. Hence the default of
  3 episodes x 512 frames: ~3.7 CPU-minutes on one core, measured next to a training job
  (docs/LPIPS.md); less on 2 idle cores.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ..envs.policies import Policy, make_policy
from ..hardware import setup_cpu
from ..runtime.simulator import WorldModel
from .metrics import at_horizons, horizon_mean, per_horizon, psnr, ssim
from .suite import Plot, SuiteResult, Table, generate, reconstruct, side_by_side

HORIZONS = (1, 8, 32, 128, 512)
SEED = 200_000
MAX_BATCH = 16  # worlds per Simulator batch
CHUNK = 128  # frames per VAE / LPIPS batch
METHODS = ("model", "copy_last", "recon")
OBJECT_HORIZON = 32  # objects are scored over the first this-many generated frames (as the held-out eval)


def _collection_policy(model: WorldModel) -> Policy:
    """The policy the checkpoint's training data was recorded with (MomentumWalk if not recorded)."""
    cfg = dict((model.config.get("data") or {}).get("policy") or {})
    name = cfg.pop("name", "momentum")
    cfg.pop("n_actions", None)
    cfg.pop("seed", None)
    try:
        return make_policy(name, model.action_spec.n, None, **cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{model.path or 'model'}/config.json: data.policy {cfg | {'name': name}} cannot be rebuilt: {e}") from None


def true_episodes(model: WorldModel, episodes: int, length: int, seed: int = SEED,
                  policy: Policy | None = None, states: list[list[dict[str, Any]]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Play ``episodes`` episodes of ``length`` frames in the model's env: frames (E, L, H, W, 3) uint8
    and actions (E, L) int64, where actions[:, t] produced frames[:, t] (0 for the reset frame).

    ``states``, if given, receives each episode's per-frame ``info["state"]`` dicts (where the env reports one)."""
    from ..data.collect import make_recorded_env

    env_id = model.config.get("env")
    if not env_id:
        raise ValueError(f"{model.path or 'model'}/config.json: no 'env' field; the fidelity suite needs the checkpoint's env")
    if model.action_spec.n_axes:  # the episodes below step discrete actions only
        raise ValueError(f"{model.path or 'model'}: a world with continuous axes {[a.name for a in model.action_spec.axes]}; "
                         "the fidelity suite plays discrete actions only for now (score it with `eval --data`)")
    env = make_recorded_env(model.config, frame_size=model.frame_size)
    n_env = getattr(env.action_space, "n", None)
    if n_env is not None and int(n_env) != model.action_spec.n:
        raise ValueError(f"env {env_id!r} has {n_env} actions, the model {model.action_spec.n} {list(model.action_spec.names)}")
    pol = policy or _collection_policy(model)
    frames = np.empty((episodes, length, model.frame_size, model.frame_size, 3), np.uint8)
    actions = np.zeros((episodes, length), np.int64)
    try:
        for i in range(episodes):
            obs, info = env.reset(seed=seed + i)
            pol.reset(seed + i)
            if states is not None:
                states.append([])
            for t in range(length):
                if t > 0:
                    actions[i, t] = int(pol.act(obs, info))
                    obs, _, terminated, truncated, info = env.step(int(actions[i, t]))
                    if (terminated or truncated) and t < length - 1:
                        raise ValueError(f"env {env_id!r} episode (seed {seed + i}) ended after {t + 1} frames; "
                                         f"{length} are needed (context + max horizon)")
                if states is not None and isinstance(info.get("state"), dict):
                    states[-1].append(info["state"])
                if obs.shape != frames.shape[2:]:
                    raise ValueError(f"env {env_id!r} gives frames {obs.shape}, the model makes {frames.shape[2:]}")
                frames[i, t] = obs
    finally:
        env.close()
    return frames, actions


@torch.inference_mode()
@torch.inference_mode()
def _lpips_per_frame(lp: Any, truth: np.ndarray, gen: np.ndarray, recon: np.ndarray, last: np.ndarray) -> dict[str, np.ndarray]:
    """LPIPS per frame (E, N) of model, copy-last and recon against truth (E, N, H, W, 3)."""
    from .lpips import to_input

    dev = next(lp.parameters()).device
    E, N = truth.shape[:2]
    out = {k: np.empty((E, N)) for k in METHODS}
    for e in range(E):
        f_last = lp.features(to_input(last[e : e + 1]).to(dev))  # the copy-last frame: once per episode
        for t0 in range(0, N, CHUNK):
            t1 = min(t0 + CHUNK, N)
            ft = lp.features(to_input(truth[e, t0:t1]).to(dev))  # five (n, C, h, w)
            out["model"][e, t0:t1] = lp.compare(ft, lp.features(to_input(gen[e, t0:t1]).to(dev))).cpu().numpy()
            out["recon"][e, t0:t1] = lp.compare(ft, lp.features(to_input(recon[e, t0:t1]).to(dev))).cpu().numpy()
            out["copy_last"][e, t0:t1] = lp.compare(ft, [f.expand(t1 - t0, -1, -1, -1) for f in f_last]).cpu().numpy()
    return out


def optional_lpips(lpips: bool | None, device: torch.device, notes: list[str]) -> Any:
    """The AlexNet LPIPS model, or None (with a note saying why) when off or its weights are not converted."""
    from .lpips import cached_lpips, weights_path

    if lpips is False:
        notes.append("LPIPS off (lpips=False): PSNR and SSIM only")
        return None
    if lpips is None and not weights_path("alex").exists():
        notes.append(f"LPIPS skipped: {weights_path('alex')} not converted (run `make lpips`); PSNR and SSIM only")
        return None
    return cached_lpips("alex", device)


def _train_overlap(model: WorldModel, seed: int, episodes: int) -> str | None:
    data = model.config.get("data") or {}
    s0, n = (data.get("policy") or {}).get("seed"), data.get("n_episodes")
    if isinstance(s0, int) and isinstance(n, int) and seed < s0 + n and s0 < seed + episodes:
        return f"episode seeds {seed}..{seed + episodes - 1} overlap the training seeds {s0}..{s0 + n - 1}"
    return None


def run_fidelity(
    model: WorldModel,
    *,
    episodes: int = 3,
    horizons: tuple[int, ...] = HORIZONS,
    context: int = 4,
    seed: int = SEED,
    sim_overrides: dict[str, Any] | None = None,
    progress: bool = False,
    lpips: bool | None = None,
    policy: Policy | None = None,
    videos: int = 2,
) -> SuiteResult:
    """PSNR / SSIM / LPIPS per horizon of the model, copy-last-frame and tokenizer reconstruction.

    Args:
        model: a loaded world model whose config names its env.
        episodes: true episodes (env and policy seeds ``seed .. seed + episodes - 1``).
        horizons: 1-based generated-frame indices reported; the rollout is ``max(horizons)`` long.
        context: true frames (and actions) the Simulator is reset on.
        seed: first episode seed; also the Simulator's sampling seed unless ``sim_overrides`` sets one.
        sim_overrides: SimConfig fields to override (e.g. ``{"steps": 2}``).
        progress: a bar over Simulator steps.
        lpips: True = require LPIPS, False = skip it, None = use it if its weights were converted.
        policy: drives the true episodes (default: the checkpoint's collection policy).
        videos: side-by-side videos (model | truth | difference) of the first this-many episodes.
    """
    hs = tuple(int(h) for h in horizons)
    if not hs or min(hs) < 1 or list(hs) != sorted(set(hs)):
        raise ValueError(f"horizons must be increasing positive integers, got {horizons}")
    if episodes < 1 or context < 1:
        raise ValueError(f"episodes and context must be >= 1, got {episodes}, {context}")
    t_start = time.time()
    N = hs[-1]
    notes = [(f"{episodes} episodes (seeds {seed}..{seed + episodes - 1}) of env {model.config.get('env')!r}; "
              f"context {context} true frames, {N} generated under the true actions; h = generated frame index")]
    if (overlap := _train_overlap(model, seed, episodes)) is not None:
        notes.append("warning: " + overlap)
    lp = optional_lpips(lpips, next(model.dit.parameters()).device, notes)

    states: list[list[dict[str, Any]]] = []
    frames, actions = true_episodes(model, episodes, context + N, seed, policy, states)  # (E, L, H, W, 3), (E, L)
    truth, last = frames[:, context:], frames[:, context - 1]  # (E, N, H, W, 3), (E, H, W, 3)
    overrides = {"seed": seed, **(sim_overrides or {})}
    run = generate(model, frames[:, :context], actions[:, :context], actions[:, context:], batch=MAX_BATCH,
                   overrides=overrides, desc="fidelity rollouts", progress=progress)
    gen, gen_s, sim_cfg = run.frames, run.seconds, run.sim_cfg
    recon = reconstruct(model, truth, CHUNK)
    copy = np.broadcast_to(last[:, None], truth.shape)

    cands = {"model": gen, "copy_last": copy, "recon": recon}
    # metric -> method -> (E, N); one episode at a time keeps float temporaries to ~N frames
    per_frame = {name: {k: np.stack([fn(c[e], truth[e]) for e in range(episodes)]) for k, c in cands.items()}
                 for name, fn in (("psnr", psnr), ("ssim", ssim))}
    if lp is not None:
        per_frame["lpips"] = _lpips_per_frame(lp, truth, gen, recon, last)
    curves = {m: {k: per_horizon(v) for k, v in d.items()} for m, d in per_frame.items()}

    metrics: dict[str, Any] = {}
    for m, c in curves.items():
        metrics[f"{m}_at"] = {k: at_horizons(v, hs) for k, v in c.items()}
        metrics[f"{m}_mean"] = {k: horizon_mean(v) for k, v in c.items()}
    metrics.update({
        "lpips_net": "alex" if lp is not None else None, "n_episodes": episodes, "context": context,
        "horizons": list(hs), "seed": seed, "env": model.config.get("env"),
        "sim": asdict(sim_cfg) if sim_cfg else None, "ms_per_frame": 1e3 * gen_s / (episodes * N),
    })

    tables: list[Table] = []
    if states and all(len(st) == context + N for st in states):  # objects over the first OBJECT_HORIZON frames
        from .object_report import object_metrics, object_table
        from .objects import score_objects

        u = min(N, OBJECT_HORIZON)
        from ..data.collect import stack_state

        per_ep = [stack_state(st[context - 1 : context + u], e) for e, st in enumerate(states)]  # (1 + u, ...) each
        stacked = {k: np.stack([d[k] for d in per_ep]) for k in per_ep[0]}
        obj = score_objects({k: c[:, :u] for k, c in cands.items()}, frames[:, context - 1 : context + u], stacked)
        if obj is not None:
            metrics["objects"] = object_metrics(obj)
            tables.append(object_table(obj))
        from ..envs.registry import priors

        wall = priors(model.config.get("env"))["structure_color"]  # walls: not objects (eval/structure.py)
        if wall:
            from .structure import score_structure, structure_metrics, structure_table

            walls = score_structure({k: c[:, :u] for k, c in cands.items()}, truth[:, :u], wall,
                                    {k: v[:, 1:] for k, v in stacked.items()})
            metrics["structure"] = structure_metrics(walls)
            tables.append(structure_table(walls))

    labels = {"model": "model", "copy_last": "copy last frame", "recon": "tokenizer reconstruction"}
    units = {"psnr": "PSNR (dB, higher is better)", "ssim": "SSIM (higher is better)", "lpips": "LPIPS-AlexNet (lower is better)"}
    fmt = {"psnr": 2, "ssim": 3, "lpips": 3}
    tables = [*[Table(units[m], ["method"] + [f"h={h}" for h in hs] + [f"mean 1-{N}"],
                    [[labels[k]] + [round(v[h - 1], fmt[m]) for h in hs] + [round(horizon_mean(v), fmt[m])]
                     for k, v in c.items()]) for m, c in curves.items()], *tables]
    plots = [Plot(f"{units[m]} vs horizon", "generated frame (log)", m.upper(), list(range(1, N + 1)),
                  {labels[k]: v for k, v in c.items()}, logx=True) for m, c in curves.items()]
    vids = {f"episode{e}": side_by_side(np.concatenate([frames[e, :context], gen[e]]), frames[e])
            for e in range(min(videos, episodes))}
    return SuiteResult("fidelity", metrics, tables, plots, vids, time.time() - t_start, notes)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Fidelity suite: PSNR/SSIM/LPIPS per horizon vs copy-last and recon.")
    p.add_argument("--checkpoint", default="arena", help="world model name or dir (default: arena)")
    p.add_argument("--episodes", type=int, default=3, help="true episodes (default: 3)")
    p.add_argument("--horizons", type=int, nargs="+", default=list(HORIZONS), help="horizons reported")
    p.add_argument("--seed", type=int, default=SEED, help=f"first episode seed (default: {SEED})")
    args = p.parse_args(argv)
    from ..runtime.loading import load

    setup_cpu()
    res = run_fidelity(load(args.checkpoint), episodes=args.episodes, horizons=tuple(args.horizons),
                       seed=args.seed, progress=True)
    for t in res.tables:
        print(t.title)
        for row in [t.columns] + t.rows:
            print("  ".join(f"{c!s:>10}" for c in row))
    print("\n".join(res.notes) + f"\n({res.seconds:.1f} s, {res.metrics['ms_per_frame']:.0f} ms per generated frame)")


if __name__ == "__main__":
    main()


__all__ = ["HORIZONS", "SEED", "run_fidelity", "true_episodes"]
