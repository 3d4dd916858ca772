"""Action names and play keys for envs whose actions are named: derived, overridden, checked.

The names come from the env where it states them (:func:`action_names`: Atari's
``get_action_meanings()``, MiniGrid's ``actions`` enum, an ``action_names`` list); the keys follow from
the names (:func:`derive_keys`) and a user's ``--keys`` replaces them per action (:func:`parse_keys`,
:func:`apply_keys`). A ``Box`` action's axes get keys to each end of their range (:func:`axis_spec`).
Used by the ``gym:`` wrapper (``envs/gym.py``), the LeRobot importer and ``collect``: one place
that turns names into keys, whichever kind of data the names came from.

Key choices:

- **One key, one binding.** The player maps a key to one action or one axis value, so a key goes to the
  first action that claims it, and an override takes its keys away from every other action and axis.
  Axes are rebound with ``KEY:VALUE`` entries (the value while held) and ``MouseX:GAIN`` / ``MouseY:GAIN``
  (the pointer, in play).
- **Keys are DOM ``KeyboardEvent.key`` names** (``a``, ``ArrowUp``, ``Enter``), letters stored
  lowercase, ``space`` spelled ``" "``: what the browser sends, with no translation table in play.
- **Names are trusted whole or not at all**: a source that does not name exactly the ``n`` actions
  with ``n`` distinct strings falls back to ``action_0..n-1`` rather than half-trusted names.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..actions import ActionSpec, Axis


_ARROWS = {"up": ("ArrowUp", "w"), "down": ("ArrowDown", "s"), "left": ("ArrowLeft", "a"), "right": ("ArrowRight", "d")}
_NAME_KEYS: dict[str, tuple[str, ...]] = {
    **_ARROWS,
    "forward": _ARROWS["up"], "backward": _ARROWS["down"], "back": _ARROWS["down"],
    "fire": (" ",), "jump": (" ",), "shoot": (" ",),
    "upleft": ("q",), "upright": ("e",), "downleft": ("z",), "downright": ("c",),
}
_NO_KEY = {"noop", "none", "nothing", "idle", "stay", "wait"}
_KEY_ALIASES = {"space": " ", "spacebar": " "}
_NAMED_KEY = re.compile(r"[A-Z][A-Za-z0-9]+")  # DOM KeyboardEvent.key names: ArrowUp, Enter, F1, PageDown …


def action_names(env: Any, n: int, start: int = 0) -> tuple[str, ...]:
    """The env's names for its actions ``start..start+n-1`` where it states them, else ``action_0..``.

    Looked for on ``env.unwrapped``: ``get_action_meanings()`` (Atari), an ``actions`` Enum (MiniGrid),
    an ``action_names`` / ``action_meanings`` list. A source that does not name exactly the ``n``
    actions with ``n`` distinct strings is ignored rather than trusted half-way.
    """
    u = env.unwrapped
    candidates: list[Any] = []
    getter = getattr(u, "get_action_meanings", None)
    if callable(getter):
        try:
            candidates.append(list(getter()))
        except Exception:  # some envs define it but cannot answer (no game loaded, …)
            pass
    actions = getattr(u, "actions", None)
    if isinstance(actions, type) and issubclass(actions, enum.Enum):
        by_value = {m.value: m.name for m in actions if isinstance(m.value, int)}
        candidates.append([by_value.get(start + i) for i in range(n)])  # enum values are the env's ids
    for attr in ("action_names", "action_meanings"):
        v = getattr(u, attr, None)
        if isinstance(v, Sequence) and not isinstance(v, str):
            candidates.append(list(v))
    for names in candidates:
        if names and len(names) == n and all(isinstance(x, str) and x for x in names) and len(set(names)) == n:
            return tuple(names)
    return tuple(f"action_{i}" for i in range(n))


def _norm(name: str) -> str:
    s = re.sub(r"[^a-z0-9]", "", name.lower())
    for prefix in ("move", "turn"):  # MiniWorld's move_forward / turn_left, …
        if s.startswith(prefix) and s[len(prefix) :] in _NAME_KEYS:
            return s[len(prefix) :]
    return "noop" if s in ("noop", "noaction") else s


def derive_keys(names: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """Default play keys (DOM ``KeyboardEvent.key`` names) for actions named ``names``.

    UP/DOWN/LEFT/RIGHT (also forward/back, turn_left, …) get the arrow and its WASD letter; FIRE /
    jump / shoot get space; the diagonals UPLEFT/UPRIGHT/DOWNLEFT/DOWNRIGHT get q/e/z/c; a no-op
    (NOOP, none, idle …) gets none. Any other action (RIGHTFIRE, pickup, action_3 …) gets the digit of
    its id if that is below 10. A key goes to the first action that claims it: one key, one action.
    """
    taken: set[str] = set()
    out: list[tuple[str, ...]] = []
    for i, name in enumerate(names):
        s = _norm(name)
        if s in _NO_KEY:
            out.append(())
            continue
        keys = tuple(k for k in _NAME_KEYS.get(s, ()) if k not in taken)
        if not keys and s not in _NAME_KEYS and i < 10:
            keys = (str(i),)
        taken.update(keys)
        out.append(keys)
    return tuple(out)


def normalize_key(key: str) -> str:
    """A DOM ``KeyboardEvent.key`` name as :class:`ActionSpec` stores it: ``"space"`` -> ``" "``,
    single letters lowercased (the player matches them case-blind). Raises ``ValueError`` otherwise."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"key {key!r} is empty or not a string")
    if key.lower() in _KEY_ALIASES:
        return _KEY_ALIASES[key.lower()]
    if len(key) == 1:
        return key.lower()
    if not _NAMED_KEY.fullmatch(key):
        raise ValueError(f"key {key!r} is not a DOM KeyboardEvent.key name (e.g. 'a', 'space', 'ArrowUp', 'Enter')")
    return key


def parse_keys(text: str) -> dict[str, list[str]]:
    """A keys override as the CLI takes it: ``'FIRE=space,UP=ArrowUp|w,NOOP='`` or a JSON object
    (``'{"FIRE": [" ", "f"], "UP": "ArrowUp"}'``, needed for the keys ``,`` and ``|``).

    Each entry replaces that action's keys (empty = no key), or an axis's bindings given as
    ``KEY:VALUE`` (``'steer=ArrowLeft:-1|ArrowRight:1'``, ``'steer=MouseX:0.01'``). Raises ``ValueError`` on
    bad syntax or key names; the names are checked against the env when it is made.
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON ({e})") from None
        if not isinstance(raw, dict):
            raise ValueError("expected a JSON object of action name -> key or [keys]")
        return check_keys(raw)
    raw_pairs: dict[str, list[str]] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, eq, keys = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ValueError(f"entry {item!r}: expected NAME=KEY[|KEY...], e.g. 'FIRE=space,UP=ArrowUp'")
        if name in raw_pairs:
            raise ValueError(f"action {name!r} is given twice")
        raw_pairs[name] = [k for k in keys.split("|") if k != ""]
    if not raw_pairs:
        raise ValueError("no entries; expected NAME=KEY[|KEY...], e.g. 'FIRE=space,UP=ArrowUp'")
    return check_keys(raw_pairs)


def split_binding(entry: str) -> tuple[str, float | None]:
    """A keys-override entry as (key, axis value): ``"ArrowLeft:-1"`` binds a key to an axis value, a plain
    ``"ArrowLeft"`` (value None) to an action."""
    key, sep, val = entry.rpartition(":")
    if not sep or not key:
        return entry, None
    try:
        v = float(val)
    except ValueError:
        return entry, None
    if not math.isfinite(v):
        raise ValueError(f"key {key!r}: axis value {val!r} is not a finite number")
    return key, v


def check_keys(keys: Mapping[str, Any]) -> dict[str, list[str]]:
    """A keys override (action name -> key or list of keys; axis name -> ``KEY:VALUE`` entries or
    ``[key, value]`` pairs) with its key names normalised; a key given twice is an error."""
    out: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for name, ks in keys.items():
        ks = [ks] if isinstance(ks, str) else ks
        if not isinstance(ks, (list, tuple)):
            raise ValueError(f"action {name!r}: expected a key or a list of keys, got {ks!r}")
        norm: list[str] = []
        valued: set[bool] = set()
        for k in ks:
            try:
                if isinstance(k, (list, tuple)) and len(k) == 2:  # JSON's [key, value]
                    key, val = k[0], float(k[1])
                else:
                    key, val = split_binding(k) if isinstance(k, str) else (k, None)
                key = normalize_key(key)
            except (TypeError, ValueError) as e:
                raise ValueError(f"action or axis {name!r}: {e}") from None
            if key in owner and owner[key] != name:
                raise ValueError(f"key {key!r} is given to both {owner[key]!r} and {name!r}")
            if val is not None and any(split_binding(e)[0] == key and e != f"{key}:{val!r}" for e in norm):
                raise ValueError(f"{name!r}: key {key!r} is given twice, with different values")
            owner[key] = str(name)
            valued.add(val is not None)
            entry = key if val is None else f"{key}:{val!r}"
            if entry not in norm:
                norm.append(entry)
        if len(valued) > 1:
            raise ValueError(f"{name!r}: give keys (an action) or KEY:VALUE entries (an axis), not both")
        out[str(name)] = norm
    return out


def apply_keys(names: Sequence[str], keys: Sequence[Sequence[str]], override: Mapping[str, Sequence[str]],
               where: str) -> tuple[tuple[str, ...], ...]:
    """``keys`` with the actions named in ``override`` given its keys; an overriding key is taken away
    from any other action (one key, one action). Names match exactly, else case-blind if unambiguous."""
    by_name = {n: i for i, n in enumerate(names)}
    by_lower: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        by_lower.setdefault(n.lower(), []).append(i)
    out = [list(k) for k in keys]
    given: dict[int, list[str]] = {}
    for name, ks in override.items():
        i = by_name.get(name)
        if i is None and len(by_lower.get(name.lower(), [])) == 1:
            i = by_lower[name.lower()][0]
        if i is None:
            raise ValueError(f"{where}: --keys: no action named {name!r}; its actions are {', '.join(names)}")
        given[i] = list(ks)
    claimed = {k for ks in given.values() for k in ks}
    for i, ks in enumerate(out):
        out[i] = given[i] if i in given else [k for k in ks if k not in claimed]
    return tuple(tuple(k) for k in out)


MOUSE = {"MouseX": "x", "MouseY": "y"}
"""Pseudo-keys an axis entry may bind to the pointer: ``steer=MouseX:0.01`` (axis units per px moved in a frame)."""


def apply_spec_keys(spec: ActionSpec, override: Mapping[str, Sequence[str]], where: str) -> ActionSpec:
    """``spec`` with a checked keys override (:func:`check_keys`) applied to its actions and its axes: an
    action's entry replaces its keys, an axis's ``KEY:VALUE`` entries its bindings (``MouseX:GAIN`` /
    ``MouseY:GAIN`` its pointer binding); every key given is taken away from all the others (one key, one
    binding). Unknown names and values outside an axis's range are errors naming ``where``."""
    axis_index = {a.name: i for i, a in enumerate(spec.axes)}
    lower: dict[str, list[str]] = {}
    for n in axis_index:
        lower.setdefault(n.lower(), []).append(n)
    actions: dict[str, Sequence[str]] = {}
    axes: dict[int, list[tuple[str, float]]] = {}
    for name, entries in override.items():
        pairs = [split_binding(e) for e in entries]
        axis = name if name in axis_index else (lower[name.lower()][0] if len(lower.get(name.lower(), [])) == 1 else None)
        if axis is not None and name not in spec.names:
            if any(v is None for _, v in pairs):
                a = spec.axes[axis_index[axis]]
                raise ValueError(f"{where}: --keys: {axis!r} is an axis: give KEY:VALUE entries, e.g. "
                                 f"'{axis}=ArrowLeft:{a.low:g}|ArrowRight:{a.high:g}'")
            axes[axis_index[axis]] = [(k, float(v)) for k, v in pairs]  # type: ignore[arg-type]
        elif any(v is not None for _, v in pairs):
            known = ", ".join(a.name for a in spec.axes) or "none"
            raise ValueError(f"{where}: --keys: {name!r} has KEY:VALUE entries but is no axis; its axes are {known}")
        else:
            actions[name] = entries
    claimed = {k for ps in axes.values() for k, _ in ps}
    try:
        keys = apply_keys(spec.names, spec.keys or tuple(() for _ in spec.names), actions, where)
    except ValueError as e:  # an unknown name: say what the axes are too
        raise ValueError(f"{e}; its axes are {', '.join(a.name for a in spec.axes)}" if spec.axes else str(e)) from None
    keys = tuple(tuple(k for k in ks if k not in claimed) for ks in keys)
    claimed |= {k for ks in actions.values() for k in ks}
    taken = {MOUSE[k] for k in claimed if k in MOUSE}  # pointer directions an override gave away
    new_axes = []
    for i, a in enumerate(spec.axes):
        if i in axes:  # this axis's bindings replaced: keys, and the pointer if a MOUSE entry names it
            bound = tuple((k, v) for k, v in axes[i] if k not in MOUSE)
            mouse = [(MOUSE[k], v) for k, v in axes[i] if k in MOUSE]
            if len(mouse) > 1:
                raise ValueError(f"{where}: --keys: axis {a.name!r} follows both MouseX and MouseY; give it one")
            how, gain = mouse[0] if mouse else ("", 0.0)
        else:
            bound = tuple((k, v) for k, v in a.keys if k not in claimed)
            how, gain = ("", 0.0) if a.mouse in taken else (a.mouse, a.mouse_gain)
        try:
            new_axes.append(Axis(a.name, a.low, a.high, a.unit, bound, how, gain))
        except ValueError as e:
            raise ValueError(f"{where}: --keys: {e}") from None
    return ActionSpec(names=spec.names, keys=keys, axes=tuple(new_axes))


# Play keys for the first two axes of a Box env: left/right drive axis 0, down/up axis 1 (to each end of the range).
AXIS_KEYS = ((("ArrowLeft", 0), ("ArrowRight", 1)), (("ArrowDown", 0), ("ArrowUp", 1)))


def axis_spec(lows: Any, highs: Any, names: Sequence[str] | None = None,
              discrete: ActionSpec | None = None) -> ActionSpec:
    """The ActionSpec of a 1-D ``Box`` action space: ``noop`` (or ``discrete``'s actions) plus one axis
    per dimension (``names``, default ``axis_i``), play keys per :data:`AXIS_KEYS` except those the
    discrete actions already use (one key, one binding)."""
    lows, highs = np.asarray(lows, np.float64).reshape(-1), np.asarray(highs, np.float64).reshape(-1)
    base = discrete or ActionSpec(names=("noop",), keys=((),))
    taken = {k for ks in base.keys for k in ks}
    axes = []
    for i, (lo, hi) in enumerate(zip(lows, highs)):
        keys = tuple((k, float((lo, hi)[end])) for k, end in AXIS_KEYS[i] if k not in taken) if i < len(AXIS_KEYS) else ()
        axes.append(Axis(names[i] if names else f"axis_{i}", float(lo), float(hi), keys=keys))
    return ActionSpec(names=base.names, keys=base.keys, axes=tuple(axes))


__all__ = ["AXIS_KEYS", "action_names", "apply_keys", "apply_spec_keys", "axis_spec", "check_keys", "derive_keys", "normalize_key",
           "parse_keys", "split_binding", "MOUSE"]
