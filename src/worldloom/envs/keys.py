"""Action names and play keys for envs whose actions are named: derived, overridden, checked.

The names come from the env where it states them (:func:`action_names`: Atari's
``get_action_meanings()``, MiniGrid's ``actions`` enum, an ``action_names`` list); the keys follow from
the names (:func:`derive_keys`) and a user's ``--keys`` replaces them per action (:func:`parse_keys`,
:func:`apply_keys`). A ``Box`` action's axes get keys to each end of their range (:func:`axis_spec`).
Used by the ``gym:`` wrapper (``envs/gym.py``), the LeRobot importer and ``collect``: one place
that turns names into keys, whichever kind of data the names came from.

Key choices:

- **One key, one action.** The player maps a key to one action, so a key goes to the first action
  that claims it, and an override takes its keys away from every other action.
- **Keys are DOM ``KeyboardEvent.key`` names** (``a``, ``ArrowUp``, ``Enter``), letters stored
  lowercase, ``space`` spelled ``" "``: what the browser sends, with no translation table in play.
- **Names are trusted whole or not at all**: a source that does not name exactly the ``n`` actions
  with ``n`` distinct strings falls back to ``action_0..n-1`` rather than half-trusted names.
"""

from __future__ import annotations

import enum
import json
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

    Each entry replaces that action's keys (empty = no key). Raises ``ValueError`` on bad syntax or
    key names; the action names are checked against the env when it is made.
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


def check_keys(keys: Mapping[str, Any]) -> dict[str, list[str]]:
    """A keys override (action name -> key or list of keys) with its key names normalised; a key
    given to two actions is an error."""
    out: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for name, ks in keys.items():
        ks = [ks] if isinstance(ks, str) else ks
        if not isinstance(ks, (list, tuple)):
            raise ValueError(f"action {name!r}: expected a key or a list of keys, got {ks!r}")
        norm: list[str] = []
        for k in ks:
            try:
                k = normalize_key(k)
            except ValueError as e:
                raise ValueError(f"action {name!r}: {e}") from None
            if k in owner and owner[k] != name:
                raise ValueError(f"key {k!r} is given to both {owner[k]!r} and {name!r}")
            owner[k] = str(name)
            if k not in norm:
                norm.append(k)
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


# Play keys for the first two axes of a Box env: left/right drive axis 0, down/up axis 1 (to each end of the range).
AXIS_KEYS = ((("ArrowLeft", 0), ("ArrowRight", 1)), (("ArrowDown", 0), ("ArrowUp", 1)))


def axis_spec(lows: Any, highs: Any, names: Sequence[str] | None = None,
              discrete: ActionSpec | None = None) -> ActionSpec:
    """The ActionSpec of a 1-D ``Box`` action space: ``noop`` (or ``discrete``'s actions) plus one axis
    per dimension (``names``, default ``axis_i``), play keys per :data:`AXIS_KEYS`."""
    lows, highs = np.asarray(lows, np.float64).reshape(-1), np.asarray(highs, np.float64).reshape(-1)
    axes = []
    for i, (lo, hi) in enumerate(zip(lows, highs)):
        keys = tuple((k, float((lo, hi)[end])) for k, end in AXIS_KEYS[i]) if i < len(AXIS_KEYS) else ()
        axes.append(Axis(names[i] if names else f"axis_{i}", float(lo), float(hi), keys=keys))
    base = discrete or ActionSpec(names=("noop",), keys=((),))
    return ActionSpec(names=base.names, keys=base.keys, axes=tuple(axes))


__all__ = ["AXIS_KEYS", "action_names", "apply_keys", "axis_spec", "check_keys", "derive_keys", "normalize_key", "parse_keys"]
