"""Held-out rollout evaluation: generate with the true actions, score against the true frames.

For each held-out episode: frames[0:context] and actions[0:context] are the context; the Simulator
generates ``horizon`` frames under the true actions[context:context+horizon]; every generated frame is
compared with the true one at the same step.

Key choices:

- **Baselines beside the model, same frames.** Copy-last-frame (repeat frames[context-1]) is the
  floor a model must beat; the tokenizer reconstruction decode(encode(truth)) is the ceiling of
  pixel quality the dynamics can reach through this VAE. A model near copy-last has learned nothing.
- **Action following from pixels** (:mod:`~worldloom.eval.motion`): the view motion estimated from
  consecutive generated frames vs the true camera motion, over horizons 1-8 and 1-32. The same
  estimator on the true frames is the ceiling (99.9 % on arena data) and on reconstructions tells
  how much the tokenizer alone loses. Generated (and reconstructed) steps are paired with the last
  context frame as the model shows it (decoded; the true frame under a temporal decoder, which draws
  after it): a change of sharpness inside a pair costs hits (see motion.py) that would not be the
  dynamics' fault.
- **Oracle-motion baseline.** With camera state, the last context frame moved by the true camera
  motion, the agent's central box kept in place (:func:`~worldloom.eval.motion.shift_view`), is scored too: a model that moves the view
  perfectly and knows nothing else. It tells how much of the gap to copy-last is motion, and how
  much is content scrolling in and balls. Following is also split by kind of step (steady, onset,
  turn, stop, still; :meth:`~worldloom.eval.motion.FollowResult.by_transition`).
- **Objects from the truth** (:mod:`~worldloom.eval.objects`): where the episodes' state reports
  objects (the arena: agent, balls, landmarks), each generated frame is scored per object
  (permanence, position error, false objects; seen in the context vs entered later), beside the
  reconstruction, copy-last and a constant-velocity oracle. Whole-frame PSNR measures the floor.
- **Action-swap check.** The same contexts and the same sampling noise, rolled out under wrong
  actions: directions rotated a quarter turn (up->right->down->left->up, noop kept) where the action
  names allow, else each episode gets the next episode's actions; continuous axes are mirrored
  within the range the data drives them (:func:`mirror_axes`), and with several axes each is also
  mirrored alone (``swap.per_axis``: which controls the model follows). Scored against the *true* frames
  and camera. A model that learned its actions must score clearly worse with wrong ones; two early
  CPU models here did not (DESIGN.md section 4), which plain PSNR alone did not reveal.
- **One batched loop** (:func:`~worldloom.eval.suite.generate`) for the true and the swapped
  rollouts: each batch is reset with the same seed, so both see identical noise. Time per generated frame counts the true-action rollouts only (batched: wall time / frames).
- **Exact frames, reported apart.** PSNR is capped at 78 dB (metrics.MIN_MSE), the score of a frame
  drawn exactly: a still scene (the truth repeats the frame before it) scores that only for a model
  that repeats it bit for bit, as copy-last does. A few such frames move the mean over horizons by
  dB, so the result also gives the share of exact frames and the mean PSNR over the frames whose
  truth changed (``exact``), where no model can score the cap by holding still.
- **JSON-ready result**: lists and floats only, NaN (e.g. no moving step) written as None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..data.format import Dataset
from ..runtime.simulator import WorldModel
from .metrics import HORIZONS, MIN_MSE, at_horizons, horizon_mean, per_horizon, psnr, ssim
from .suite import clean, generate, reconstruct

if TYPE_CHECKING:
    from ..actions import ActionSpec
from .motion import MAX_SHIFT, TRANSITIONS, action_following, central_mask, shift_view
from .object_report import format_objects
from .objects import score_objects
from .structure import format_structure, score_structure

FOLLOW_HORIZONS = (8, 32)
_ROTATE = {"up": "right", "right": "down", "down": "left", "left": "up"}


def swap_actions(actions: np.ndarray, names: tuple[str, ...], mode: str = "auto") -> tuple[np.ndarray, str]:
    """Wrong actions for the swap check: actions (E, N) int -> (swapped (E, N), mode used).

    ``"rotate"``: every direction turned a quarter turn clockwise (needs up/down/left/right names);
    ``"roll"``: episode i gets episode i+1's actions (time-reversed if there is only one episode);
    ``"auto"``: rotate when possible, else roll.
    """
    a = np.asarray(actions)
    if mode == "auto":
        mode = "rotate" if set(_ROTATE) <= set(names) else "roll"
    if mode == "rotate":
        if not set(_ROTATE) <= set(names):
            raise ValueError(f"swap 'rotate' needs actions named {sorted(_ROTATE)}, got {list(names)}")
        lut = np.arange(max(len(names), int(a.max(initial=0)) + 1))
        for src, dst in _ROTATE.items():
            lut[names.index(src)] = names.index(dst)
        return lut[a], mode
    if mode == "roll":
        return (np.roll(a, -1, axis=0) if len(a) > 1 else a[:, ::-1].copy()), mode
    raise ValueError(f"swap mode must be 'auto', 'rotate' or 'roll', got {mode!r}")


@torch.inference_mode()
def mirror_axes(axes: np.ndarray, seen: Sequence[np.ndarray], spec: ActionSpec) -> np.ndarray:
    """The wrong-action counterpart of continuous ``axes`` (..., A): each value mirrored about the centre of
    the values the axis takes in ``seen`` (per-episode (T, A) arrays), kept inside the axis's range.

    The data's range, not the axis's: an axis the data holds still (a driving game's brake, collected
    off) stays still instead of being swapped to a value the model never saw, and a narrowed one (the
    gas driven within 0.1-0.5) swaps within what it was trained on."""
    v = np.concatenate([np.asarray(x, np.float32).reshape(-1, spec.n_axes) for x in seen])  # (N, A)
    lo, hi = np.array([a.low for a in spec.axes], np.float32), np.array([a.high for a in spec.axes], np.float32)
    return np.clip(v.min(0) + v.max(0) - axes, lo, hi).astype(np.float32)  # float32 rounding may step past an end


def evaluate_rollouts(
    model: WorldModel,
    data: str | Path,
    *,
    context: int = 4,
    horizon: int = 32,
    episodes: int = 50,
    batch: int = 10,
    start: int = 0,
    sim_overrides: dict[str, Any] | None = None,
    seed: int = 0,
    swap: str = "auto",
    max_shift: int = MAX_SHIFT,
    progress: bool = True,
) -> dict[str, Any]:
    """Roll out the first ``episodes`` long-enough episodes of a held-out dataset and score them.

    Args:
        model: a loaded world model (:func:`worldloom.runtime.loading.load`).
        data: dataset directory; episodes shorter than ``context + horizon`` frames are skipped.
        context: true frames (and their actions) the Simulator is reset on.
        horizon: frames generated per episode, under the true actions that followed the context.
        episodes: how many episodes to score (fewer if the dataset has fewer long enough).
        batch: episodes rolled out together.
        start: first context frame in each episode. 0 starts at the reset, where the agent is at rest:
            the first generated frames then differ from the last context frame only by ball motion,
            so copy-last scores above the tokenizer's ceiling there (see docs/BENCHMARKS.md).
        sim_overrides: SimConfig fields to override (e.g. ``{"steps": 2}``); ``seed`` sets its seed.
        seed: sampling-noise seed (unless ``sim_overrides`` sets one).
        swap: wrong-action scheme of the swap check, see :func:`swap_actions`.
        max_shift: search range of the motion estimator, px.
        progress: show a bar over batches (only on a terminal).

    Returns:
        A JSON-ready dict: ``psnr`` / ``ssim`` curves per horizon, ``psnr_at``, ``psnr_mean``,
        ``ssim_mean``, ``action_following`` (None without camera state), ``objects`` (per-object scores,
        :func:`~worldloom.eval.objects.score_objects`; None without objects in the state), ``swap``, ``timing``,
        ``n_episodes``, ``settings``. See :func:`format_report` for a readable table.
    """
    if context < 1 or horizon < 1 or episodes < 1 or batch < 1 or start < 0:
        raise ValueError(f"context, horizon, episodes and batch must be >= 1 and start >= 0, got {context}, {horizon}, "
                         f"{episodes}, {batch}, {start}")
    ds = Dataset.open(data)
    if tuple(ds.frame_shape[:2]) != (model.frame_size, model.frame_size):
        raise ValueError(f"{data}: frames are {tuple(ds.frame_shape)}, the model makes {model.frame_size}x{model.frame_size}")
    model.action_spec.require_same(ds.action_spec, mine=f"checkpoint {model.path or 'model'}/config.json",
                                   theirs=f"dataset {data}/meta.json")
    L, S = context + horizon, start
    picked = [i for i in range(len(ds)) if ds.lengths[i] >= S + L][:episodes]  # opens only these
    if not picked:
        raise ValueError(f"{data}: no episode has the {S + L} frames needed (start {S} + context {context} + horizon {horizon})")
    eps = [ds[i] for i in picked]
    frames = np.stack([np.array(e.frames[S : S + L]) for e in eps])  # (E, L, H, W, 3) uint8
    actions = np.stack([np.array(e.actions[S : S + L]) for e in eps]).astype(np.int64)  # (E, L)
    camera = (np.stack([np.array(e.state["camera"][S : S + L]) for e in eps])
              if all("camera" in e.state for e in eps) else None)
    keys = set.intersection(*(set(e.state) for e in eps))
    state = {k: np.stack([np.array(e.state[k][S + context - 1 : S + L]) for e in eps]) for k in sorted(keys)}
    E = len(eps)
    wrong, swap_mode = swap_actions(actions[:, context:], tuple(model.action_spec.names), swap)
    spec = model.action_spec
    axes = wrong_axes = None
    if spec.n_axes:  # continuous parts: the true values, and each mirrored for the swap check
        axes = np.stack([np.array(e.axes[S : S + L]) for e in eps]).astype(np.float32)  # (E, L, A)
        wrong_axes = mirror_axes(axes[:, context:], [np.asarray(e.axes[1:]) for e in eps], spec)
        swap_mode += "+axes mirrored in the data's range"

    overrides = {"seed": seed, **(sim_overrides or {})}
    ctx, ctx_a = frames[:, :context], actions[:, :context]
    ctx_ax = None if axes is None else axes[:, :context]
    run = generate(model, ctx, ctx_a, actions[:, context:], batch=batch, overrides=overrides, desc="eval rollouts",
                   progress=progress, context_axes=ctx_ax, axes=None if axes is None else axes[:, context:])
    gen, gen_time, n_steps, sim_cfg = run.frames, run.seconds, run.steps, run.sim_cfg
    gen_swap = generate(model, ctx, ctx_a, wrong, batch=batch, overrides=overrides, desc="swapped actions",
                        progress=progress, context_axes=ctx_ax, axes=wrong_axes).frames
    recon = reconstruct(model, frames[:, context - 1 :])  # (E, 1 + horizon, H, W, 3)

    truth, last = frames[:, context:], frames[:, context - 1]  # (E, N, H, W, 3), (E, H, W, 3)
    copy = np.broadcast_to(last[:, None], truth.shape)
    scored = {"model": gen, "copy_last": copy, "recon": recon[:, 1:], "swapped_actions": gen_swap}
    per_frame = {k: psnr(v, truth) for k, v in scored.items()}  # (E, N) each
    ssim_curves = {
        "model": per_horizon(ssim(gen, truth)),
        "copy_last": per_horizon(ssim(copy, truth)),
        "recon": per_horizon(ssim(recon[:, 1:], truth)),
    }

    follow: dict[str, Any] | None = None
    from ..envs.registry import agent_half_px, priors

    agent_half = agent_half_px(ds.env)  # the box a following camera keeps its agent in
    if camera is not None:
        cam = camera[:, context - 1 :]  # (E, 1 + horizon, 2): [last context, generated steps]
        mask = central_mask(last.shape[1:3], agent_half)
        moved = shift_view(copy, cam[:, 1:] - cam[:, :1], keep=mask)  # (E, N, H, W, 3)
        scored["copy_shifted"], per_frame["copy_shifted"] = moved, psnr(moved, truth)
        prev = camera[:, context - 1] - camera[:, context - 2] if context >= 2 else None  # (E, 2)
        # Generated frames follow the last context frame as the model shows it: decoded, or the true one when
        # a temporal decoder draws after it. A change of sharpness inside a pair would cost the first step
        # hits that are not the dynamics' fault.
        shown = last if model.tdec is not None else recon[:, 0]
        runs = {
            "model": action_following(gen, cam, shown, prev_motion=prev, mask=mask, max_shift=max_shift),
            "true_frames": action_following(truth, cam, last, prev_motion=prev, mask=mask, max_shift=max_shift),
            "recon": action_following(recon[:, 1:], cam, recon[:, 0], prev_motion=prev, mask=mask, max_shift=max_shift),
            "swapped_actions": action_following(gen_swap, cam, shown, prev_motion=prev, mask=mask, max_shift=max_shift),
        }
        follow = {k: {**r.summary(FOLLOW_HORIZONS), "per_step": r.per_step("hit").tolist(),
                      **({"by_transition": {f"h1_{h}": r.by_transition(h) for h in FOLLOW_HORIZONS}}
                         if prev is not None else {})}
                  for k, r in runs.items()}

    # Objects the env reports in its state, scored from the truth (None for worlds without them).
    cands = {"model": gen, "copy_last": copy, "recon": recon[:, 1:]}
    wall = priors(ds.env)["structure_color"]  # walls: not objects, so scored by their colour (eval/structure.py)
    objects = score_objects(cands, frames[:, context - 1 :], state, structure=wall) if state else None
    structure = score_structure(cands, truth, wall, {k: v[:, 1:] for k, v in state.items()}) if wall else None

    psnr_curves = {k: per_horizon(v) for k, v in per_frame.items()}
    changed = ~(truth == np.concatenate([last[:, None], truth[:, :-1]], 1)).all(axis=(2, 3, 4))  # (E, N)
    exact = {"still_share": float(1 - changed.mean()),
             "exact_share": {k: float((v == truth).all(axis=(2, 3, 4)).mean()) for k, v in scored.items()},
             "psnr_mean_changed": {k: float(v[changed].mean()) if changed.any() else None for k, v in per_frame.items()}}

    swap_out: dict[str, Any] = {
        "mode": swap_mode,
        "psnr": psnr_curves["swapped_actions"],
        "psnr_mean": horizon_mean(psnr_curves["swapped_actions"]),
        "psnr_gap": horizon_mean(psnr_curves["model"]) - horizon_mean(psnr_curves["swapped_actions"]),
    }
    if follow is not None:
        for h in FOLLOW_HORIZONS:
            swap_out[f"follow_gap_h1_{h}"] = follow["model"][f"h1_{h}"] - follow["swapped_actions"][f"h1_{h}"]
    if axes is not None and wrong_axes is not None and spec.n_axes > 1:
        # Which controls the model follows: one more rollout per axis the swap changed, only it mirrored.
        swap_out["per_axis"] = {}
        true_ax = axes[:, context:]
        for i, ax in enumerate(spec.axes):
            if np.array_equal(wrong_axes[..., i], true_ax[..., i]):
                continue  # held still by the data: its mirror is itself
            one = true_ax.copy()
            one[..., i] = wrong_axes[..., i]
            g = generate(model, ctx, ctx_a, actions[:, context:], batch=batch, overrides=overrides,
                         desc=f"{ax.name} mirrored", progress=progress, context_axes=ctx_ax, axes=one).frames
            m = horizon_mean(per_horizon(psnr(g, truth)))
            swap_out["per_axis"][ax.name] = {"psnr_mean": m, "psnr_gap": horizon_mean(psnr_curves["model"]) - m}

    frames_made = E * horizon
    result = {
        "psnr": psnr_curves,
        "psnr_at": {k: at_horizons(v) for k, v in psnr_curves.items()},
        "psnr_mean": {k: horizon_mean(v) for k, v in psnr_curves.items()},
        "ssim": ssim_curves,
        "ssim_at": {k: at_horizons(v) for k, v in ssim_curves.items()},
        "ssim_mean": {k: horizon_mean(v) for k, v in ssim_curves.items()},
        "exact": exact,
        "action_following": follow,
        "objects": objects,
        "structure": structure,
        "swap": swap_out,
        "timing": {"ms_per_frame": 1e3 * gen_time / frames_made, "ms_per_step": 1e3 * gen_time / n_steps,
                   "frames_generated": frames_made},
        "n_episodes": E,
        "settings": {
            "data": str(data), "model": str(model.path) if model.path else None,
            "context": context, "horizon": horizon, "episodes_requested": episodes, "batch": batch, "start": start,
            "seed": seed, "sim": asdict(sim_cfg) if sim_cfg else None, "swap": swap_mode,
            "device": str(next(model.dit.parameters()).device),
            "motion": {"max_shift": max_shift, "mask": f"central box, half-size {agent_half} px" if agent_half >= 0 else "none",
                       "follow_horizons": [min(h, horizon) for h in FOLLOW_HORIZONS]},
        },
    }
    return clean(result)


# ------------------------------------------------------------------------------------ report
def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def format_report(result: dict[str, Any]) -> str:
    """A markdown summary of :func:`evaluate_rollouts`' result (for docs/BENCHMARKS.md)."""
    s = result["settings"]
    H = s["horizon"]
    hs = [int(h) for h in result["psnr_at"]["model"]] + ([] if H in HORIZONS else [H])  # and the last one
    lines = [
        f"Held-out rollouts: {result['n_episodes']} episodes of `{s['data']}`, context {s['context']} frames from "
        f"frame {s.get('start', 0)}, "
        f"horizon {H}, sampler steps {s['sim']['steps'] if s['sim'] else '?'}, seed {s['seed']}.",
        "",
        "| PSNR (dB) | " + " | ".join(f"h={h}" for h in hs) + f" | mean 1-{H} |",
        "|---" * (len(hs) + 2) + "|",
    ]
    names = {"model": "model", "swapped_actions": f"model, wrong actions ({s['swap']})",
             "copy_last": "copy last frame", "copy_shifted": "copy last, moved by the true camera (oracle motion)",
             "recon": "tokenizer reconstruction (ceiling)"}
    for k, label in names.items():
        if k not in result["psnr"]:
            continue
        row = [_f(result["psnr"][k][h - 1]) for h in hs]
        lines.append(f"| {label} | " + " | ".join(row) + f" | {_f(result['psnr_mean'][k])} |")
    ex = result.get("exact")
    if ex:
        lines += ["", f"Exact frames (PSNR capped at {10 * np.log10(255**2 / MIN_MSE):.0f} dB): the truth repeats the "
                      f"frame before it in {ex['still_share']:.1%} of frames; drawn bit for bit by "
                  + ", ".join(f"{names[k]} {ex['exact_share'][k]:.1%}" for k in names if k in ex["exact_share"])
                  + ". Mean PSNR over the frames whose truth changed: "
                  + ", ".join(f"{names[k]} {_f(ex['psnr_mean_changed'][k])}" for k in names if k in ex["psnr_mean_changed"])
                  + " dB."]
    lines += ["", "| SSIM | " + " | ".join(f"h={h}" for h in hs) + f" | mean 1-{H} |", "|---" * (len(hs) + 2) + "|"]
    for k in ("model", "copy_last", "recon"):
        row = [_f(result["ssim"][k][h - 1], "{:.3f}") for h in hs]
        lines.append(f"| {names[k]} | " + " | ".join(row) + f" | {_f(result['ssim_mean'][k], '{:.3f}')} |")
    follow = result["action_following"]
    # Keys are named by the nominal horizons (8, 32) but cover 1..min(h, horizon): show distinct ones.
    spans = dict(zip(FOLLOW_HORIZONS, s["motion"]["follow_horizons"]))
    keys = [h for h in FOLLOW_HORIZONS if spans[h] not in [spans[g] for g in FOLLOW_HORIZONS if g < h]]
    b = spans[FOLLOW_HORIZONS[-1]]
    if follow is not None:
        head = [f"dir h1-{spans[h]}" for h in keys] + [f"exact h1-{spans[h]}" for h in keys]
        lines += ["", "Action following: share of moving steps whose estimated view motion has the true direction "
                      "(exact: the true shift; still: no motion estimated where the camera stood).", "",
                  "| following | " + " | ".join(head) + f" | still h1-{b} | moving steps h1-{b} |",
                  "|---" * (len(head) + 3) + "|"]
        labels = {"model": "model", "swapped_actions": names["swapped_actions"],
                  "recon": "tokenizer reconstruction", "true_frames": "true frames (ceiling)"}
        last = FOLLOW_HORIZONS[-1]
        for k, label in labels.items():
            r = follow[k]
            cells = [_f(r[f"{kind}h1_{h}"], "{:.1%}") for kind in ("", "exact_") for h in keys]
            lines.append(f"| {label} | " + " | ".join(cells) +
                         f" | {_f(r[f'still_h1_{last}'], '{:.1%}')} | {r[f'n_moving_h1_{last}']} |")
        bt = follow["model"].get("by_transition")
        if bt:
            lines += ["", "Model following by kind of step (moving kinds: direction hits; stop/still: no motion "
                          "estimated; n steps in brackets):", "",
                      "| horizons | " + " | ".join(TRANSITIONS) + " |", "|---" * (len(TRANSITIONS) + 1) + "|"]
            for h in keys:
                row = bt[f"h1_{h}"]
                lines.append(f"| h1-{spans[h]} | " + " | ".join(
                    f"{_f(row[k]['rate'], '{:.1%}')} ({row[k]['n']})" for k in TRANSITIONS) + " |")
    if result.get("objects"):
        lines += ["", format_objects(result["objects"]).rstrip()]
    if result.get("structure"):
        lines += ["", format_structure(result["structure"]).rstrip()]
    sw = result["swap"]
    check = f"Action-swap check: PSNR mean {_f(result['psnr_mean']['model'])} dB with the true actions vs " \
            f"{_f(sw['psnr_mean'])} dB with wrong ones (gap {_f(sw['psnr_gap'])} dB)"
    if f"follow_gap_h1_{FOLLOW_HORIZONS[-1]}" in sw:
        check += f"; direction hits h1-{b} gap {_f(sw[f'follow_gap_h1_{FOLLOW_HORIZONS[-1]}'], '{:+.1%}')}"
    if sw.get("per_axis"):
        check += "; one axis mirrored at a time: " + ", ".join(f"{k} gap {_f(v['psnr_gap'])} dB" for k, v in sw["per_axis"].items())
    t = result["timing"]
    lines += ["", check + ".",
              f"Speed: {t['ms_per_frame']:.2f} ms per generated frame ({t['ms_per_step']:.1f} ms per step of a batch "
              f"of up to {s['batch']}) on {s['device']}."]
    return "\n".join(lines) + "\n"


__all__ = ["evaluate_rollouts", "format_report", "swap_actions"]
