"""One registration per env: how worldloom builds it, records it and rebuilds it.

An :class:`EnvEntry` holds everything the rest of the project needs to know about an env, so that
collect, eval, play and bench never special-case one by name:

- ``build(frame_size, kwargs)``: the ``gymnasium.Env`` (its module is imported only then);
- ``record(frame_size, kwargs)``: the kwargs a dataset's ``meta.json`` stores, with every default
  that decides what the frames look like filled in (the frame-size field, a control law, a wrapper's
  options), so the data says how to rebuild its env;
- ``legacy(kwargs)``: what a record from before such a field existed was made with;
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

Kwargs = dict[str, Any]


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
    doc: str = ""


_ENTRIES: dict[str, EnvEntry] = {}


def register(e: EnvEntry) -> EnvEntry:
    """Add (or replace) an env entry; returns it."""
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


PRIORS: Kwargs = {"agent_half_px": -1, "structure_color": None}  # each prior's value for an env that states none


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


def _arena_control(kw: Kwargs) -> None:  # the control law changed once (sixth session): say which made the data
    from .arena import ArenaConfig

    kw.setdefault("control", ArenaConfig.control)


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


register(EnvEntry("arena", _arena, _sized("view", _arena_control), _setdefault("control", "smooth"),
                  suites=("causality", "persistence"), priors={"agent_half_px": ARENA_AGENT_HALF, "structure_color": ARENA_WALL_COLOR},
                  doc="the hero world: a top-down agent pushing bouncing balls (worldloom.envs.arena)"))
register(EnvEntry("phys2d", _phys2d, _sized("frame_size"), suites=("physics",),
                  doc="PhyWorld's 2-D physics scenes (worldloom.envs.phys2d)"))
# Records from before the adapter options were recorded squeezed whole frames into the square.
register(EnvEntry("gym:", _gym, _gym_record, _setdefault("adapter", {"fit": "stretch"}),
                  doc="any Gymnasium env with a Discrete or bounded Box action space (worldloom.envs.gym)"))
