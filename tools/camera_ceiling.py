"""How predictable is the arena's next camera step from what the last K frames show?

    .venv/bin/python tools/camera_ceiling.py runs/arena/data-train runs/arena/data-heldout

The camera snaps to a 4 px grid, so whether it moves at a step depends on the agent's sub-cell
position and velocity, which frames show only to the pixel. This fits no model: it tabulates, on
the training episodes' ground truth, the next camera step against what K frames show (the agent's
drawn pixel position in the view, the camera steps between them, the actions up to the one taken),
then predicts held-out steps by majority vote, backing off to fewer frames for unseen keys. The
in-sample majority share per K is how deterministic the step is given K frames (an upper bound
for any model that sees them, inflated where keys are rare: K=4 has ~2 steps per key, K=2 ~9);
the held-out direction-hit rate is a floor for what K=4 frames allow.

Measured (docs/BENCHMARKS.md): in the first worlds' 'smooth' control law, 92.0 % with K=2 and 92.4 %
held-out; in the current 'accel' law (whole 2 px velocity steps), 97.7 % and 97.8 %.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

import numpy as np

from worldloom.data.format import Dataset

KS = (4, 3, 2, 1)


def _episodes(path: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    ds = Dataset.open(path)
    return [(np.floor(np.array(e.state["agent_pos_view"])).astype(int),  # drawn sprite pixel, (T, 2)
             np.array(e.state["camera"]).astype(int), np.array(e.actions).astype(int)) for e in ds]


def _key(ep: tuple[np.ndarray, np.ndarray, np.ndarray], t: int, k: int) -> tuple[int, ...]:
    """What frames t-k..t-1 show, plus the actions into frames t-k+1..t (the last one is taken now)."""
    pos, cam, act = ep
    f = [int(v) for j in range(1, k + 1) for v in pos[t - j]]
    f += [int(v) for j in range(1, k) for v in cam[t - j] - cam[t - j - 1]]
    return (*f, *(int(a) for a in act[t - k + 1 : t + 1]))


def main(train: str, heldout: str) -> None:
    tables: dict[int, defaultdict[tuple[int, ...], Counter]] = {k: defaultdict(Counter) for k in KS}
    for ep in _episodes(train):
        for t in range(max(KS), len(ep[2])):
            step = tuple(int(v) for v in ep[1][t] - ep[1][t - 1])
            for k in KS:
                tables[k][_key(ep, t, k)][step] += 1
    for k in KS:
        n = sum(sum(c.values()) for c in tables[k].values())
        top = sum(c.most_common(1)[0][1] for c in tables[k].values())
        print(f"K={k}: next camera step = the majority for its key in {top / n:.1%} of {n} training steps "
              f"({len(tables[k])} keys)")
    hits = moving = 0
    for ep in _episodes(heldout):
        for t in range(max(KS), len(ep[2])):
            true = ep[1][t] - ep[1][t - 1]
            if not true.any():
                continue
            moving += 1
            for k in KS:
                c = tables[k].get(_key(ep, t, k))
                if c:
                    hits += bool((np.sign(c.most_common(1)[0][0]) == np.sign(true)).all())
                    break
    print(f"held-out: {hits / moving:.1%} of {moving} moving steps get the true direction by lookup with back-off")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
