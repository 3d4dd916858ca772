"""Causality and action-following on the arena: does the generated view move the way the true env does?

From each of ``episodes`` real arena contexts, every scripted action (noop, up, down, left, right) is
held for ``steps`` steps, in the model and in the true env, and the view motion of both is measured
with :mod:`~worldloom.eval.motion` (masked block matching, agent sprite masked out, a frozen or
blurred step reads as "no motion" and so counts as a miss).

Key choices:

- **Real contexts, fixed seeds.** Episode i resets the arena with seed ``seed + i`` (>= 300000, away
  from the training and held-out ranges) and walks ``warmup + context - 1`` steps of
  :class:`~worldloom.envs.policies.MomentumWalk` seeded alike; the last ``context`` frames and their
  actions are the context. So the agent is often already moving, as in the training data, and
  inertia carries into the first scripted steps: the truth is the env's camera, never the action.
- **The same context for every action.** The true env is restored by re-running the same seed and
  context actions (checked frame by frame: a non-deterministic env is an error, not noise); the
  model is reset on the same context with the same sampling seed for each action, so lane i sees
  identical noise under every action and any difference between two rollouts is the action's doing.
- **Accuracy** = share of steps where the true camera moved whose estimated motion has the true
  direction on both axes (``FollowResult.hit``), per action and pooled; the same estimator on the true
  frames is the ceiling. Generated steps are paired with the *decoded* last context frame (a sharp
  true frame next to a decoded one would cost hits that are not the dynamics' fault; see motion.py).
- **Confusion matrix** of the true direction (from the camera) against the estimated direction,
  over all steps: still / up / down / left / right / diagonal (inertia makes some true steps diagonal).
- **No-op stability**: on noop steps where the true camera stood still, the share where the model's
  view is estimated still too, and the mean absolute pixel change between consecutive frames
  (uint8 levels; balls still move in the truth) for the model and the truth.
- **Counterfactuals**: for each pair of actions (a, b) from the same context, the L1 / PSNR between the
  two generated rollouts against the same between the two true ones (a model that ignores actions
  gives a difference near 0: same noise), and whether the generated difference has the right motion:
  the shift estimated from rollout a's frame to rollout b's against the true camera difference, on
  steps where that difference is non-zero and within the estimator's range.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..runtime.simulator import Simulator, WorldModel
from .metrics import psnr
from .motion import (
    MAX_SHIFT,
    FollowResult,
    action_following,
    central_mask,
    estimate_shift,
)
from .suite import Plot, SuiteResult, Table, reconstruct, side_by_side

SEED = 300_000
CONTEXT = 4
DIRECTIONS = ("still", "up", "down", "left", "right", "diagonal")
ARENA_NAMES = ("noop", "up", "down", "left", "right")


def make_truth_env(model: WorldModel, suite: str) -> Any:
    """The env the checkpoint was trained on (``config["env"]``, ``env_kwargs``), at its frame size; its
    registration must list ``suite`` (the suite's truth is that env's camera state)."""
    from ..envs.registry import envs_for_suite

    env_id, need = model.config.get("env"), envs_for_suite(suite)
    if env_id not in need:
        raise ValueError(f"{suite}: needs a checkpoint trained on {' or '.join(map(repr, need))} (config['env'] is "
                         f"{env_id!r}): truth comes from the camera state that env registers for this suite")
    missing = [n for n in ARENA_NAMES if n not in model.action_spec.names]
    if missing:
        raise ValueError(f"{suite}: the checkpoint's action_spec {list(model.action_spec.names)} lacks {missing}")
    from ..data.collect import make_recorded_env

    env = make_recorded_env(model.config, frame_size=model.frame_size)
    if env.observation_space.shape != (model.frame_size, model.frame_size, 3):
        raise ValueError(f"{suite}: env_kwargs give {env.observation_space.shape} frames, the model makes "
                         f"{model.frame_size}x{model.frame_size}")
    return env


def direction(motion: np.ndarray) -> np.ndarray:
    """Camera motion (..., 2) as (dx, dy) -> index (...) into ``DIRECTIONS`` (y is down: up = dy < 0)."""
    sx, sy = np.sign(motion[..., 0]), np.sign(motion[..., 1])
    out = np.full(sx.shape, 5, np.int64)  # diagonal unless one axis is still
    out[(sx == 0) & (sy == 0)] = 0
    out[(sx == 0) & (sy < 0)] = 1
    out[(sx == 0) & (sy > 0)] = 2
    out[(sy == 0) & (sx < 0)] = 3
    out[(sy == 0) & (sx > 0)] = 4
    return out


def confusion(true: np.ndarray, est: np.ndarray) -> np.ndarray:
    """Counts (6, 6) [true direction, estimated direction] over motions (..., 2)."""
    m = np.zeros((len(DIRECTIONS), len(DIRECTIONS)), np.int64)
    np.add.at(m, (direction(true).ravel(), direction(est).ravel()), 1)
    return m


def _context(env: Any, seed: int, n_actions: int, context: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """A MomentumWalk from reset(seed): all frames (L, H, W, 3) and actions (L,), L = warmup + context.

    actions[0] = 0 stands for the reset; replaying actions[1:] after reset(seed) restores the env."""
    from ..envs.policies import MomentumWalk

    obs, info = env.reset(seed=seed)
    pol = MomentumWalk(n_actions=n_actions, seed=seed)
    frames, actions = [obs], [0]
    for _ in range(warmup + context - 1):
        a = int(pol.act(obs, info))
        obs, _, _, _, info = env.step(a)
        frames.append(obs)
        actions.append(a)
    return np.stack(frames), np.asarray(actions, np.int64)


def _true_rollout(env: Any, seed: int, replay: np.ndarray, last: np.ndarray, action: int, steps: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Restore the env (reset + replay[1:]), hold ``action``: frames (steps, H, W, 3), camera (steps+1, 2)."""
    obs, info = env.reset(seed=seed)
    for a in replay[1:]:
        obs, _, _, _, info = env.step(int(a))
    if not np.array_equal(obs, last):
        raise RuntimeError(f"causality: the arena did not restore to the same context (seed {seed}); "
                           "the env must be deterministic given its seed and actions")
    frames, cams = [], [info["state"]["camera"]]
    for _ in range(steps):
        obs, _, _, _, info = env.step(int(action))
        frames.append(obs)
        cams.append(info["state"]["camera"])
    return np.stack(frames), np.stack(cams).astype(np.int64)


def _pool(results: list[FollowResult]) -> FollowResult:
    return FollowResult(est=np.concatenate([r.est for r in results]), true=np.concatenate([r.true for r in results]))


def _mean_change(frames: np.ndarray, first_prev: np.ndarray, where: np.ndarray) -> float:
    """Mean |frame_t - frame_{t-1}| (uint8 levels) over steps ``where`` (E, N); frames (E, N, H, W, 3)."""
    seq = np.concatenate([first_prev[:, None], frames], 1).astype(np.int16)
    change = np.abs(np.diff(seq, axis=1)).mean(axis=(-3, -2, -1))  # (E, N)
    return float(change[where].mean()) if where.any() else float("nan")


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.1%}"


@torch.inference_mode()
def run_causality(
    model: WorldModel,
    *,
    episodes: int = 16,
    steps: int = 8,
    seed: int = SEED,
    context: int = CONTEXT,
    warmup: int = 8,
    sim_overrides: dict[str, Any] | None = None,
    max_shift: int = MAX_SHIFT,
    progress: bool = False,
) -> SuiteResult:
    """Score action following, no-op stability and counterfactuals of an arena world model.

    Args:
        model: a loaded arena world model.
        episodes: contexts (arena seeds ``seed .. seed + episodes - 1``); one batched Simulator.
        steps: steps each scripted action is held after the context.
        seed: first arena seed (also seeds each context's MomentumWalk).
        context: context frames the Simulator is reset on.
        warmup: MomentumWalk steps before the context starts.
        sim_overrides: SimConfig fields to override (steps, window, sink, seed ...).
        max_shift: search range of the motion estimator, px.
        progress: a bar over actions (only on a terminal).
    """
    for name, v, lo in (("episodes", episodes, 1), ("steps", steps, 1), ("context", context, 1), ("warmup", warmup, 0)):
        if int(v) < lo:
            raise ValueError(f"causality: {name} must be >= {lo}, got {v}")
    env = make_truth_env(model, "causality")
    spec = model.action_spec
    ids = [spec.index(n) for n in ARENA_NAMES]
    seeds = [seed + i for i in range(episodes)]

    # Contexts (E, T, H, W, 3) and the action lists that restore each one.
    walks = [_context(env, s, spec.n, context, warmup) for s in seeds]
    replay = [a for _, a in walks]
    ctx = np.stack([f[-context:] for f, _ in walks])
    ctx_a = np.stack([a[-context:] for a in replay])
    last = ctx[:, -1]
    recon_last = reconstruct(model, last)  # (E, H, W, 3)

    sim = Simulator(model, batch=episodes, **(sim_overrides or {}))
    gen, true, cams = {}, {}, {}
    bar = tqdm(ARENA_NAMES, desc="causality", unit="action", disable=not progress or not sys.stderr.isatty())
    for name, a in zip(bar, ids):
        tr = [_true_rollout(env, s, r, l, a, steps) for s, r, l in zip(seeds, replay, last)]
        true[name], cams[name] = np.stack([f for f, _ in tr]), np.stack([c for _, c in tr])  # (E, N, ...), (E, N+1, 2)
        sim.reset(ctx, ctx_a)  # same context, same seed: lane i draws the same noise for every action
        out = sim.rollout(np.full((episodes, steps), a, np.int64))
        gen[name] = out[None] if episodes == 1 else out
    bar.close()
    env.close()

    from ..envs.registry import agent_half_px

    half = agent_half_px(model.config.get("env"))
    mask = central_mask(last.shape[-3:-1], half)  # the agent the camera follows stays put: it does not vote
    fm = {n: action_following(gen[n], cams[n], recon_last, mask=mask, max_shift=max_shift) for n in ARENA_NAMES}
    ft = {n: action_following(true[n], cams[n], last, mask=mask, max_shift=max_shift) for n in ARENA_NAMES}
    pm, pt = _pool(list(fm.values())), _pool(list(ft.values()))
    per_action = {n: {"accuracy": fm[n].rate("hit"), "exact": fm[n].rate("exact"), "ceiling": ft[n].rate("hit"),
                      "moving_steps": int(fm[n].moving.sum())} for n in ARENA_NAMES}
    conf_m, conf_t = confusion(pm.true, pm.est), confusion(pt.true, pt.est)

    still = ~fm["noop"].moving  # (E, N) noop steps where the true camera stood
    noop = {"still_steps": int(still.sum()), "still_rate": fm["noop"].rate("still"),
            "still_rate_ceiling": ft["noop"].rate("still"),
            "change_model": _mean_change(gen["noop"], recon_last, still),
            "change_true": _mean_change(true["noop"], last, still)}

    pairs: dict[str, dict[str, Any]] = {}
    l1_steps_m, l1_steps_t = [], []
    hits_m, hits_t, scored = 0, 0, 0
    for a, b in itertools.combinations(ARENA_NAMES, 2):
        l1m = np.abs(gen[a].astype(np.int16) - gen[b]).mean(axis=(-3, -2, -1))  # (E, N)
        l1t = np.abs(true[a].astype(np.int16) - true[b]).mean(axis=(-3, -2, -1))
        l1_steps_m.append(l1m.mean(0))
        l1_steps_t.append(l1t.mean(0))
        dcam = cams[b][:, 1:] - cams[a][:, 1:]  # (E, N, 2): camera of b relative to a, = the shift a -> b
        ok = (dcam != 0).any(-1) & (np.abs(dcam) <= max_shift).all(-1)
        hm = (np.sign(estimate_shift(gen[a], gen[b], mask, max_shift=max_shift)) == np.sign(dcam)).all(-1) & ok
        ht = (np.sign(estimate_shift(true[a], true[b], mask, max_shift=max_shift)) == np.sign(dcam)).all(-1) & ok
        n_ok = int(ok.sum())
        hits_m, hits_t, scored = hits_m + int(hm.sum()), hits_t + int(ht.sum()), scored + n_ok
        pairs[f"{a}/{b}"] = {
            "l1_model": float(l1m.mean()), "l1_true": float(l1t.mean()),
            "psnr_model": float(psnr(gen[a], gen[b]).mean()), "psnr_true": float(psnr(true[a], true[b]).mean()),
            "motion_hit": hm.sum() / n_ok if n_ok else float("nan"),
            "motion_hit_ceiling": ht.sum() / n_ok if n_ok else float("nan"), "motion_steps": n_ok,
        }
    cf_l1_m = float(np.mean([p["l1_model"] for p in pairs.values()]))
    cf_l1_t = float(np.mean([p["l1_true"] for p in pairs.values()]))

    metrics: dict[str, Any] = {
        "accuracy": pm.rate("hit"), "accuracy_ceiling": pt.rate("hit"), "exact": pm.rate("exact"),
        "moving_steps": int(pm.moving.sum()),
        "noop_still_rate": noop["still_rate"], "noop_still_rate_ceiling": noop["still_rate_ceiling"],
        "noop_change_model": noop["change_model"], "noop_change_true": noop["change_true"],
        "cf_l1_model": cf_l1_m, "cf_l1_true": cf_l1_t, "cf_l1_ratio": cf_l1_m / cf_l1_t if cf_l1_t > 0 else float("nan"),
        "cf_motion_hit": hits_m / scored if scored else float("nan"),
        "cf_motion_hit_ceiling": hits_t / scored if scored else float("nan"),
        "per_action": per_action, "confusion": {"labels": list(DIRECTIONS), "model": conf_m, "true_frames": conf_t},
        "noop": noop, "counterfactuals": pairs,
        "per_step": {"model": pm.per_step("hit"), "true_frames": pt.per_step("hit")},
        "settings": {"episodes": episodes, "seeds": [seeds[0], seeds[-1]], "steps": steps, "context": context,
                     "warmup": warmup, "context_policy": "momentum", "actions": list(ARENA_NAMES),
                     "sim": asdict(sim.cfg), "max_shift": max_shift, "mask": f"central box, half-size {half} px"},
    }

    tables = [
        Table("Action following per scripted action (moving steps: the true camera moved)",
              ["action", "model (direction)", "model (exact shift)", "true frames (ceiling)", "moving steps"],
              [[n, _pct(r["accuracy"]), _pct(r["exact"]), _pct(r["ceiling"]), r["moving_steps"]] for n, r in per_action.items()]
              + [["all", _pct(metrics["accuracy"]), _pct(metrics["exact"]), _pct(metrics["accuracy_ceiling"]),
                  metrics["moving_steps"]]]),
        Table("Confusion, model: true direction (rows) x direction estimated from generated frames (columns)",
              ["true \\ model", *DIRECTIONS], [[d, *row] for d, row in zip(DIRECTIONS, conf_m.tolist())]),
        Table("Confusion, true frames (ceiling of the estimator)",
              ["true \\ estimated", *DIRECTIONS], [[d, *row] for d, row in zip(DIRECTIONS, conf_t.tolist())]),
        Table("No-op stability (noop steps where the true camera stood still)",
              ["still steps", "model still", "true frames still", "model mean |change|", "true mean |change|"],
              [[noop["still_steps"], _pct(noop["still_rate"]), _pct(noop["still_rate_ceiling"]),
                f"{noop['change_model']:.2f}", f"{noop['change_true']:.2f}"]]),
        Table("Counterfactuals: two actions from the same context (L1 in uint8 levels; motion = shift of "
              "rollout b against rollout a has the true camera difference's direction)",
              ["pair a/b", "L1 model", "L1 true", "PSNR model", "PSNR true", "motion model", "motion true", "steps"],
              [[k, f"{p['l1_model']:.2f}", f"{p['l1_true']:.2f}", f"{p['psnr_model']:.2f}", f"{p['psnr_true']:.2f}",
                _pct(p["motion_hit"]), _pct(p["motion_hit_ceiling"]), p["motion_steps"]] for k, p in pairs.items()]),
    ]
    x = list(range(1, steps + 1))
    plots = [
        Plot("Action following against step (all actions)", "step after the context", "direction hits",
             x, {"model": list(pm.per_step("hit")), "true frames (ceiling)": list(pt.per_step("hit"))}),
        Plot("Counterfactual difference against step (mean over action pairs)", "step after the context",
             "L1 between the two rollouts", x,
             {"model": list(np.mean(l1_steps_m, 0)), "simulator": list(np.mean(l1_steps_t, 0))}),
    ]
    videos = {}
    for i in range(min(2, episodes)):  # every action from the same context, one after the other
        seq_m = np.concatenate([np.concatenate([recon_last[i, None], gen[n][i]]) for n in ARENA_NAMES])
        seq_t = np.concatenate([np.concatenate([last[i, None], true[n][i]]) for n in ARENA_NAMES])
        videos[f"context {i}: noop, up, down, left, right"] = side_by_side(seq_m, seq_t)
    notes = [f"{episodes} arena contexts (seeds {seeds[0]}..{seeds[-1]}, MomentumWalk, {context} frames after "
             f"{warmup} warm-up steps); each of {', '.join(ARENA_NAMES)} held {steps} steps in the model and the env.",
             "Videos: model | simulator | |difference| x4; each action starts from the last context frame."]
    return SuiteResult("causality", metrics, tables, plots, videos, notes=notes)


__all__ = ["ARENA_NAMES", "DIRECTIONS", "SEED", "confusion", "direction", "make_truth_env", "run_causality"]
