"""One registration per env: how worldloom builds it, records it and rebuilds it.

An :class:`EnvEntry` holds everything the rest of the project needs to know about an env, so that
collect, eval, play and bench never special-case one by name:

- ``build(frame_size, kwargs)``: the ``gymnasium.Env`` (its module is imported only then);
- ``record(frame_size, kwargs)``: the kwargs a dataset's ``meta.json`` stores, with every default
  that decides what the frames look like filled in (the frame-size field, a control law, a wrapper's
  options), so the data says how to rebuild its env;
- ``legacy(kwargs)``: what a record from before such a field existed was made with;
- ``actions``: its ActionSpec (action names, play keys, continuous axes), fixed or computed from the
  built env; left out, the env states it (``env.unwrapped.action_spec``, as the built-in worlds and the
  ``gym:`` wrapper do) or it follows from a ``Discrete`` or 1-D ``Box`` space (:func:`action_spec`);
- ``defaults``: collection defaults, each a :func:`worldloom.data.collect` argument that the user left
  out (:data:`COLLECT_DEFAULTS` names them; ``env_kwargs`` is merged under the user's);
- ``suites``: the eval suites that need this env's ground truth (the physics suite needs ``phys2d``);
- ``priors``: what models and metrics may assume about its frames, passed to them by whoever builds
  them (:func:`priors`), never imported from the world's module. ``agent_half_px``: the half-size of
  the box at the view's centre that holds an agent the camera follows (left out when the view's motion
  is estimated: the agent stays put while the floor scrolls); -1, the default, for none.
  ``structure_color``: the RGB colour of the world's static structure (walls), which the eval's wall
  score looks for (eval/structure.py); None, the default, for none.

Ids are exact names (``arena``, ``phys2d``) or a prefix family (``gym:<Gymnasium id>``). A new env
is one :func:`register` call; :func:`entry` finds it, and an unknown id is an error listing them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from ..actions import ActionSpec

Kwargs = dict[str, Any]

PRIORS: Kwargs = {"agent_half_px": -1, "structure_color": None}  # each prior's value for an env that states none
# What `collect` uses for an argument that neither the user nor the env's registration gives.
COLLECT_DEFAULTS: Kwargs = {"episodes": 20, "steps": 300, "policy": "momentum", "frame_size": 64, "env_kwargs": {}}


@dataclass(frozen=True)
class EnvEntry:
    name: str
    """Exact id, or a prefix ending in ':' for a family of ids (``gym:``)."""
    build: Callable[[str, int, Kwargs], gymnasium.Env]
    """(env id, frame size, recorded kwargs) -> the env."""
    record: Callable[[str, int, Kwargs], Kwargs] = field(default=lambda env_id, size, kw: dict(kw))
    """(env id, frame size, user kwargs) -> the kwargs to store and build with."""
    legacy: Callable[[Kwargs], Kwargs] = field(default=lambda kw: dict(kw))
    """Recorded kwargs -> the same with the defaults of records older than a field filled in."""
    suites: tuple[str, ...] = ()
    """Eval suites whose ground truth this env provides."""
    priors: Mapping[str, Any] = field(default_factory=dict)
    """What models and metrics may assume about the frames (see the module docstring)."""
    actions: ActionSpec | Callable[[gymnasium.Env], ActionSpec] | None = None
    """The env's ActionSpec, or built env -> its spec; None: the env states it or its space implies it."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Collection defaults (keys of COLLECT_DEFAULTS) for the arguments a user leaves out."""
    doc: str = ""


_ENTRIES: dict[str, EnvEntry] = {}


def register(e: EnvEntry) -> EnvEntry:
    """Add (or replace) an env entry; returns it. Unknown ``priors`` or ``defaults`` keys are an error."""
    for what, given, known_keys in (("priors", e.priors, PRIORS), ("defaults", e.defaults, COLLECT_DEFAULTS)):
        unknown = sorted(set(given) - set(known_keys))
        if unknown:
            raise ValueError(f"env {e.name!r}: unknown {what} key(s) {unknown}; known: {sorted(known_keys)}")
    if not isinstance(e.defaults.get("env_kwargs", {}), Mapping):
        raise ValueError(f"env {e.name!r}: defaults.env_kwargs must be an object, got {e.defaults['env_kwargs']!r}")
    _ENTRIES[e.name] = e
    return e


def entry(env_id: str) -> EnvEntry:
    """The entry that builds ``env_id``: an exact name, else the longest matching ``prefix:``."""
    if env_id in _ENTRIES and not env_id.endswith(":"):  # a bare "gym:" names no env
        return _ENTRIES[env_id]
    families = [n for n in _ENTRIES if n.endswith(":") and env_id.startswith(n) and len(env_id) > len(n)]
    if families:
        return _ENTRIES[max(families, key=len)]
    raise ValueError(f"unknown env id {env_id!r}; known: {known()}")


def priors(env_id: str | None) -> Kwargs:
    """The priors of ``env_id``'s entry over :data:`PRIORS`; an unknown id or none (imported video) gets the defaults."""
    try:
        own = entry(env_id).priors if env_id else {}
    except ValueError:
        own = {}
    return {**PRIORS, **own}


def agent_half_px(env_id: str | None) -> int:
    """``env_id``'s ``agent_half_px`` prior: the half-size of the view-centre box holding an agent the camera
    follows, -1 for none (what every view-shift estimate of its frames leaves out)."""
    return int(priors(env_id)["agent_half_px"])


def collect_defaults(env_id: str, given: Mapping[str, Any]) -> Kwargs:
    """Every collection argument for ``env_id``: ``given``'s where not None, else its registration's
    default, else :data:`COLLECT_DEFAULTS`'s. ``env_kwargs`` objects merge (the user's fields win, one
    level deep, so a default ``adapter`` object keeps the options the user does not set)."""
    own = entry(env_id).defaults
    out = {k: given[k] if given.get(k) is not None else own.get(k, v)
           for k, v in COLLECT_DEFAULTS.items() if k != "env_kwargs"}
    kw = {k: dict(v) if isinstance(v, Mapping) else v for k, v in own.get("env_kwargs", {}).items()}
    for k, v in (given.get("env_kwargs") or {}).items():
        kw[k] = {**kw[k], **v} if isinstance(kw.get(k), dict) and isinstance(v, Mapping) else v
    out["env_kwargs"] = kw
    return out


def action_spec(env_id: str, env: gymnasium.Env) -> ActionSpec:
    """The ActionSpec of ``env`` (built for ``env_id``): its registration's ``actions``, else the one the
    env states (``env.unwrapped.action_spec``), else a ``Discrete`` space's ids or a 1-D ``Box``'s axes.
    A spec that a ``Discrete`` or 1-D ``Box`` space contradicts is an error naming both."""
    given = entry(env_id).actions
    spec = given(env) if callable(given) else given
    if spec is None:
        spec = getattr(env.unwrapped, "action_spec", None)
    space = env.action_space
    box = isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1
    if spec is None:
        if isinstance(space, gymnasium.spaces.Discrete):
            return ActionSpec.discrete(int(space.n))
        if not box:
            raise ValueError(f"env {env_id!r}: no ActionSpec (give its registration's actions or an action_spec "
                             f"attribute) and its action space {space} is not Discrete or a 1-D Box")
        from .keys import axis_spec

        return axis_spec(space.low, space.high)
    if not isinstance(spec, ActionSpec):
        raise ValueError(f"env {env_id!r}: its actions must be an ActionSpec, got {type(spec).__name__}")
    if isinstance(space, gymnasium.spaces.Discrete) and not spec.n_axes and spec.n != int(space.n):
        raise ValueError(f"env {env_id!r}: its ActionSpec names {spec.n} actions {list(spec.names)}, "
                         f"but its action space is Discrete({int(space.n)})")
    if box and spec.n_axes != space.shape[0]:
        raise ValueError(f"env {env_id!r}: its ActionSpec has {spec.n_axes} axes, but its action space is a Box of "
                         f"{space.shape[0]}")
    return spec


def envs_for_suite(suite: str) -> list[str]:
    """The registered envs whose ground truth ``suite`` needs (empty: the suite scores any env)."""
    return [n for n, e in _ENTRIES.items() if suite in e.suites]


def known() -> list[str]:
    """Every registered id, families written as ``prefix<id>`` (for messages and --help)."""
    return [n + "<id>" if n.endswith(":") else n for n in _ENTRIES]


def _sized(field_name: str, fill: Callable[[Kwargs], None] | None = None) -> Callable[[str, int, Kwargs], Kwargs]:
    def record(env_id: str, size: int, kw: Kwargs) -> Kwargs:
        out = dict(kw)
        out.setdefault(field_name, size)
        if fill is not None:
            fill(out)
        return out
    return record


# --- the built-in worlds and the Gymnasium family --------------------------------------------------


# The arena camera follows its agent: the agent's 5 px radius, up to 2 px off centre under the 4 px
# camera snap, and 2 px of margin.
ARENA_AGENT_HALF = 9
ARENA_WALL_COLOR = (40, 40, 48)  # envs.arena.OUTSIDE: the wall band and what lies beyond it


def _arena(env_id: str, size: int, kw: Kwargs) -> gymnasium.Env:
    from .arena import ArenaConfig, ArenaEnv

    kw = dict(kw)
    render_mode = kw.pop("render_mode", "rgb_array")
    return ArenaEnv(ArenaConfig(**kw), render_mode=render_mode)


# Fields whose default changed once: a record states them, and a record from before they were stated
# gets what its data was made with (the first control law; the 1-3 px/step balls capped at 6).
ARENA_RECORDED = {"control": "smooth", "ball_speed_min": 1.0, "ball_speed_max": 3.0, "max_ball_speed": 6.0}


def _arena_record(kw: Kwargs) -> None:
    from .arena import ArenaConfig

    for key in ARENA_RECORDED:
        kw.setdefault(key, getattr(ArenaConfig, key))


def _arena_legacy(kw: Kwargs) -> Kwargs:
    return {**ARENA_RECORDED, **kw}


def _phys2d(env_id: str, size: int, kw: Kwargs) -> gymnasium.Env:
    from .phys2d import Phys2DConfig, Phys2DEnv

    kw = dict(kw)
    render_mode = kw.pop("render_mode", "rgb_array")
    return Phys2DEnv(Phys2DConfig(**kw), render_mode=render_mode)


def _gym(env_id: str, size: int, kw: Kwargs) -> gymnasium.Env:
    from .gym import ADAPTER_KEY, make_gym_env

    kw = dict(kw)
    size = int(kw.pop("frame_size", size))  # envs.make(id, frame_size=...) passes it as a field too
    adapter = kw.pop(ADAPTER_KEY, None) or {}
    return make_gym_env(env_id[len("gym:"):], frame_size=size, **adapter, **kw)


def _gym_record(env_id: str, size: int, kw: Kwargs) -> Kwargs:  # every wrapper option: the data says how it was framed
    from .gym import ADAPTER_KEY, adapter_options

    out = dict(kw)
    if out.get(ADAPTER_KEY) is not None and not isinstance(out[ADAPTER_KEY], Mapping):
        raise ValueError(f"env_kwargs.{ADAPTER_KEY}: expected an object, got {out[ADAPTER_KEY]!r}")
    out[ADAPTER_KEY] = adapter_options(out.get(ADAPTER_KEY))
    return out


def _setdefault(key: str, value: Any) -> Callable[[Kwargs], Kwargs]:
    return lambda kw: {**kw, key: kw.get(key, value)}


register(EnvEntry("arena", _arena, _sized("view", _arena_record), _arena_legacy,
                  suites=("causality", "persistence"), priors={"agent_half_px": ARENA_AGENT_HALF, "structure_color": ARENA_WALL_COLOR},
                  doc="the hero world: a top-down agent pushing bouncing balls (worldloom.envs.arena)"))
register(EnvEntry("phys2d", _phys2d, _sized("frame_size"), suites=("physics",),
                  doc="PhyWorld's 2-D physics scenes (worldloom.envs.phys2d)"))
# Records from before the adapter options were recorded squeezed whole frames into the square.
register(EnvEntry("gym:", _gym, _gym_record, _setdefault("adapter", {"fit": "stretch"}),
                  doc="any Gymnasium env with a Discrete or bounded Box action space (worldloom.envs.gym)"))
