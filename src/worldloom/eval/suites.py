"""The suite registry (name -> runner, imported lazily) and the runner behind ``worldloom eval --suite``.

Suites: ``physics`` (phys2d scenes), ``causality``, ``persistence`` (arena), ``fidelity``, ``speed``
(the default five, in this order), ``rollout``: the foundation issue's held-out rollout eval
(:func:`worldloom.eval.rollout.evaluate_rollouts`, needs a dataset) as a suite, and ``revisits``:
returns to earlier views found in a dataset, per memory (:mod:`worldloom.eval.revisits`, any env).

Key choices:

- **Lazy and checked up front.** A suite's module is imported only when selected, so a broken or
  missing suite never costs the others; but every selected suite is resolved (module, function,
  the checkpoint it needs, its options) *before* the first one runs, so a typo or a missing phys2d
  checkpoint fails in a second, naming the suite, not after ten minutes of the others.
- **A failure is never a silent skip.** With ``keep_going`` (the CLI's choice) a suite that raises
  is recorded in ``errors`` by name and the rest still run, so the report shows what did work; the
  caller must treat a non-empty ``errors`` as a failed eval. Without it, a :class:`SuiteError` that
  names the suite is raised.
- **Common settings by signature**: ``sim_overrides``, ``progress`` and ``data`` reach a runner only
  if its signature takes them, so suites written by others need not accept every knob; per-suite
  ``options`` must be accepted, or it is an error naming the option.
- **physics** runs on ``physics_checkpoint`` when one is given; else on the main checkpoint if its
  ``config["env"]`` is ``"phys2d"``, else on the bundled per-scene models; loaded once up front. A
  ``physics_checkpoint`` containing ``{scene}`` names one model per scene (PhyWorld trains one per
  scene), e.g. ``phys2d-{scene}`` -> ``phys2d-uniform``, ``phys2d-parabola``, ``phys2d-collision``.
- Each suite is timed here (``SuiteResult.seconds``), including its model work and its scoring.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runtime.simulator import WorldModel
from .suite import Plot, SuiteResult, Table

DEFAULT_SUITES = ("physics", "causality", "persistence", "fidelity", "speed")
DEFAULT_PHYSICS = "phys2d-{scene}"  # the bundled per-scene phys2d models (checkpoints/phys2d-uniform, ...)
_COMMON = ("sim_overrides", "progress", "data")


@dataclass(frozen=True)
class SuiteSpec:
    module: str
    function: str
    about: str
    needs_data: bool = False  # takes a held-out dataset (``data``), which must be given
    # The env a scored model must be trained on is not here: an env's registration lists the suites
    # its ground truth serves (worldloom.envs.registry.envs_for_suite).


SUITES: dict[str, SuiteSpec] = {
    "physics": SuiteSpec("worldloom.eval.physics", "run_physics", "physics scenes of phys2d against their simulator"),
    "causality": SuiteSpec("worldloom.eval.causality", "run_causality",
                           "action following, confusion, no-op stability and counterfactuals on arena"),
    "persistence": SuiteSpec("worldloom.eval.persistence", "run_persistence",
                             "go-and-return probes on arena: revisit PSNR/SSIM per k"),
    "fidelity": SuiteSpec("worldloom.eval.fidelity", "run_fidelity", "frame fidelity against the simulator"),
    "speed": SuiteSpec("worldloom.eval.speed", "run_speed", "rollout bench: FPS, latency, stages, memory"),
    "revisits": SuiteSpec("worldloom.eval.revisits", "run_revisits",
                          "returns to views seen long before, found in a dataset (--data; any env, no pose): PSNR per memory",
                          needs_data=True),
    "rollout": SuiteSpec("worldloom.eval.suites", "run_rollout",
                         "held-out rollouts of a dataset (--data): PSNR/SSIM per horizon, action swap", needs_data=True),
}


class SuiteError(RuntimeError):
    """A selected suite cannot run or failed; the message starts with ``suite 'NAME'``."""


def parse_suites(text: str) -> list[str]:
    """``"causality,speed"`` (or ``"all"`` for the default five) -> names, checked, duplicates dropped."""
    names: list[str] = []
    for tok in (t.strip().lower() for t in text.split(",")):
        if tok == "all":
            names += [n for n in DEFAULT_SUITES if n not in names]
        elif tok not in SUITES:
            raise ValueError(f"--suite: unknown suite {tok!r}; known: {', '.join(SUITES)} (or all)")
        elif tok not in names:
            names.append(tok)
    if not names:
        raise ValueError(f"--suite: no suite named in {text!r}")
    return names


def resolve(name: str) -> Callable[..., SuiteResult]:
    """Import suite ``name``'s runner; a missing module or function is a :class:`SuiteError` naming it."""
    if name not in SUITES:
        raise SuiteError(f"suite {name!r}: unknown; known: {', '.join(SUITES)}")
    spec = SUITES[name]
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as e:
        if e.name and spec.module.startswith(e.name):
            raise SuiteError(f"suite {name!r}: its module {spec.module} is not in this installation") from None
        raise SuiteError(f"suite {name!r}: importing {spec.module} failed: {e}") from e
    except Exception as e:  # a syntax or import-time error inside the suite
        raise SuiteError(f"suite {name!r}: importing {spec.module} failed: {type(e).__name__}: {e}") from e
    fn = getattr(module, spec.function, None)
    if not callable(fn):
        raise SuiteError(f"suite {name!r}: {spec.module} has no function {spec.function}")
    return fn


def _kwargs(name: str, fn: Callable[..., Any], options: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    bad = [k for k in options if k not in params and not takes_any]
    if bad:
        raise SuiteError(f"suite {name!r}: unknown option(s) {bad}; {fn.__name__} takes "
                         f"{[p for p in params if p != 'model']}")
    kw = {k: v for k, v in common.items() if v is not None and (k in params or takes_any)}
    return {**kw, **options}


def _env_of(model: WorldModel) -> str | None:
    return model.config.get("env")


def run_suites(
    model: WorldModel,
    names: list[str] | tuple[str, ...],
    *,
    options: dict[str, dict[str, Any]] | None = None,
    sim_overrides: dict[str, Any] | None = None,
    data: str | Path | None = None,
    physics_checkpoint: str | Path | WorldModel | dict[str, WorldModel] | None = None,
    progress: bool = False,
    keep_going: bool = False,
    on_done: Callable[[str, SuiteResult | None, str | None], None] | None = None,
) -> tuple[list[SuiteResult], dict[str, str]]:
    """Run the named suites in order; returns (results, errors by suite name).

    Args:
        model: the checkpoint under evaluation.
        names: suite names (see ``SUITES``), run in this order.
        options: per-suite keyword arguments, e.g. ``{"persistence": {"ks": (8, 32)}}``.
        sim_overrides: SimConfig fields for every suite's Simulator.
        data: a dataset directory for suites that take ``data`` (``rollout``); an error if none does.
        physics_checkpoint: phys2d checkpoint (name, path or loaded model; a name or path with
            ``{scene}``, or a dict, gives one model per scene) for ``physics``. None: the main model
            if it is a phys2d one, else ``DEFAULT_PHYSICS`` (the bundled per-scene models).
        progress: progress bars where a suite has them.
        keep_going: record a failing suite in ``errors`` and go on, instead of raising.
        on_done: called after each suite with (name, result or None, error or None), e.g. to print.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise SuiteError(f"suite {unknown[0]!r}: options given but the suite is not selected")
    runners = {n: resolve(n) for n in names}  # all up front: fail before any work is done
    models: dict[str, Any] = {}
    for n in names:
        from ..envs.registry import envs_for_suite

        need, have = envs_for_suite(n), _env_of(model)
        if n == "physics":
            src = physics_source(model, physics_checkpoint)
            models[n] = model if src is model else physics_models(src)
        elif SUITES[n].needs_data and data is None:
            raise SuiteError(f"suite {n!r}: needs a held-out dataset (--data DIR)")
        elif need and have not in need:
            raise SuiteError(f"suite {n!r}: needs a checkpoint trained on {' or '.join(map(repr, need))}, this one has "
                             f"config['env'] = {have!r}")
        else:
            models[n] = model
    common = {"sim_overrides": sim_overrides, "progress": progress, "data": str(data) if data is not None else None}
    kwargs = {n: _kwargs(n, runners[n], options.get(n, {}), common) for n in names}
    if data is not None and not any("data" in kw for kw in kwargs.values()):
        raise ValueError(f"--data {data}: no selected suite uses a dataset (the rollout suite does)")

    results: list[SuiteResult] = []
    errors: dict[str, str] = {}
    for n in names:
        t0 = time.perf_counter()
        try:
            res = runners[n](models[n], **kwargs[n])
            if not isinstance(res, SuiteResult):
                raise TypeError(f"{SUITES[n].function} returned {type(res).__name__}, not a SuiteResult")
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            if not keep_going:
                raise SuiteError(f"suite {n!r} failed: {msg}") from e
            errors[n] = msg
            if on_done:
                on_done(n, None, msg)
            continue
        res.seconds = time.perf_counter() - t0
        results.append(res)
        if on_done:
            on_done(n, res, None)
    return results, errors


def physics_source(model: WorldModel, physics_checkpoint: Any = None) -> Any:
    """What the physics suite runs on: ``physics_checkpoint`` if given, else ``model`` if it is a
    phys2d one, else ``DEFAULT_PHYSICS``."""
    if physics_checkpoint is not None:
        return physics_checkpoint
    return model if _env_of(model) == "phys2d" else DEFAULT_PHYSICS


def physics_models(ckpt: str | Path | WorldModel | dict[str, WorldModel]) -> WorldModel | dict[str, WorldModel]:
    """The physics suite's model, or one per scene (a dict, or a name/path containing ``{scene}``),
    loaded and checked to be phys2d models; a problem is a :class:`SuiteError` naming the checkpoint."""
    if isinstance(ckpt, dict) or (not isinstance(ckpt, WorldModel) and "{scene}" in str(ckpt)):
        from ..envs.phys2d import SCENARIOS

        given = ckpt if isinstance(ckpt, dict) else {sc: str(ckpt).replace("{scene}", sc) for sc in SCENARIOS}
        missing = [sc for sc in SCENARIOS if sc not in given]
        if missing:
            raise SuiteError(f"suite 'physics': no model for scene(s) {missing} in --physics-checkpoint {ckpt}")
        return {sc: physics_models(given[sc]) for sc in SCENARIOS}
    if isinstance(ckpt, WorldModel):
        model = ckpt
    else:
        from ..runtime.loading import load

        try:
            model = load(ckpt)
        except (ValueError, OSError) as e:
            raise SuiteError(f"suite 'physics': cannot load the phys2d checkpoint {str(ckpt)!r} "
                             f"(--physics-checkpoint): {e}") from None
    if _env_of(model) != "phys2d":
        name = ckpt if not isinstance(ckpt, WorldModel) else (ckpt.path or "the given model")
        raise SuiteError(f"suite 'physics': --physics-checkpoint {name} has config['env'] = {_env_of(model)!r}, "
                         "expected 'phys2d'")
    return model


# ------------------------------------------------------------------------------------ rollout
def run_rollout(model: WorldModel, *, data: str | Path | None = None, context: int = 4, horizon: int = 32,
                episodes: int = 50, batch: int = 10, swap: str = "auto", seed: int = 0, start: int = 0,
                sim_overrides: dict[str, Any] | None = None, progress: bool = False) -> SuiteResult:
    """The foundation issue's held-out rollout eval as a suite (needs ``data``); arguments as in
    :func:`~worldloom.eval.rollout.evaluate_rollouts`, whose whole result is kept under ``detail``."""
    from .rollout import FOLLOW_HORIZONS, evaluate_rollouts, format_report

    if data is None:
        raise ValueError("rollout: needs a held-out dataset (--data DIR)")
    r = evaluate_rollouts(model, data, context=context, horizon=horizon, episodes=episodes, batch=batch,
                          sim_overrides=sim_overrides, seed=seed, swap=swap, progress=progress, start=start)
    follow = r["action_following"] or {}
    last = f"h1_{FOLLOW_HORIZONS[-1]}"
    metrics = {
        "psnr_mean": r["psnr_mean"]["model"], "psnr_mean_copy_last": r["psnr_mean"]["copy_last"],
        "ssim_mean": r["ssim_mean"]["model"], "swap_psnr_gap": r["swap"]["psnr_gap"],
        "follow": (follow.get("model") or {}).get(last), "follow_ceiling": (follow.get("true_frames") or {}).get(last),
        "ms_per_frame": r["timing"]["ms_per_frame"], "detail": r,
    }
    x = [float(h) for h in range(1, horizon + 1)]
    names = {"model": "model", "swapped_actions": "model, wrong actions", "copy_last": "copy last frame",
             "copy_shifted": "copy last, moved by the true camera", "recon": "tokenizer reconstruction"}
    plots = [Plot("Held-out rollouts: PSNR against horizon", "horizon (frames after the context)", "PSNR (dB)", x,
                  {names[k]: v for k, v in r["psnr"].items()}),
             Plot("Held-out rollouts: SSIM against horizon", "horizon (frames after the context)", "SSIM", x,
                  {names[k]: v for k, v in r["ssim"].items()})]
    hs = sorted({int(h) for h in r["psnr_at"]["model"]} | {horizon})
    tables = [Table("PSNR (dB) at horizons", ["", *[f"h={h}" for h in hs], "mean"],
                    [[names[k], *[v[h - 1] for h in hs], r["psnr_mean"][k]] for k, v in r["psnr"].items()])]
    if follow:
        tables.append(Table(f"Action following (direction hits over moving steps, {last})", ["frames", "hits", "exact"],
                            [[k, v[last], v[f"exact_{last}"]] for k, v in follow.items()]))
    obj = r.get("objects")
    if obj:
        from .object_report import object_metrics, object_table

        metrics.update(object_metrics(obj))
        tables.append(object_table(obj))
        plots.append(Plot("Held-out rollouts: permanence of objects seen in the context", "horizon (frames after the context)",
                          "share drawn", x, {f"{kind}, {who}": obj["scores"][who][kind]["seen"]["permanence"]
                                             for kind in obj["kinds"] for who in ("model", "copy_last", "recon")}))
    walls = r.get("structure")
    if walls:
        from .structure import structure_metrics, structure_table

        metrics.update(structure_metrics(walls))
        tables.append(structure_table(walls))
        plots.append(Plot("Held-out rollouts: walls, IoU with the truth", "horizon (frames after the context)", "IoU", x,
                          {names[k]: walls[k]["iou"] for k in ("model", "copy_last", "recon") if k in walls}))
    notes = [ln for ln in format_report(r).splitlines() if ln and not ln.startswith("|")][:1]
    return SuiteResult("rollout", metrics, tables, plots, notes=notes)


__all__ = ["DEFAULT_PHYSICS", "DEFAULT_SUITES", "SUITES", "SuiteError", "SuiteSpec", "parse_suites", "physics_models", "physics_source",
           "resolve", "run_rollout", "run_suites"]
