#!/bin/bash
# The objects issue's arms of the fifth and sixth sessions (docs/BENCHMARKS.md, "Objects"): each trains the
# small DiT (width 128, 4 blocks, 1,500 steps, lr 1e-3) on a still 64 px arena world and probes how far it
# moves a ball one step from true frames (tools/teacher_forced_ball_probe.py). All are single factors on R
# or F but Rpw, which puts the two that helped together. On this 2-core box about 7-10 min an arm at 16
# tokens, ~18 min at 64 on R and ~35-60 min at 64 on the textured F. (R and Rc were run with 1 thread.)
#
#     [THREADS=1] bash tools/object_arms.sh [WORK] [ARM ...]   (WORK defaults to runs/arms; no ARM = all of them;
#                                                            THREADS=1 for two arms side by side)
set -euo pipefail
W=${1:-runs/arms}
ONLY=" ${*:2} "
WL=".venv/bin/python -m worldloom.cli"
mkdir -p "$W"
R='"world_size": 64, "follow": false, "n_landmarks": 0, "n_balls": 1, "plain_floor": true'  # world R
F='"world_size": 64, "follow": false, "n_landmarks": 3'                                       # world F
data() {  # name, env kwargs: 120 training episodes from seed 0, 60 validation layouts from seed 8,000,000
  [[ -f "$W/$1-val/meta.json" ]] && return 0
  $WL collect arena --episodes 120 --steps 300 --seed 0 --out "$W/$1-train" --env-kwargs "{$2}" --overwrite
  $WL collect arena --episodes 60 --steps 64 --seed 8000000 --out "$W/$1-val" --env-kwargs "{$2}" --overwrite
}
arm() {  # name, data name, extra train args...
  local name=$1 d=$2; shift 2
  [[ "$ONLY" == "  " || "$ONLY" == *" $name "* ]] || return 0
  $WL train dynamics --data "$W/$d-train" --tokenizer checkpoints/arena --out "$W/$name" --dyn-dim 128 --dyn-depth 4 \
    --train-steps 1500 --train-lr 1e-3 --train-threads "${THREADS:-2}" "$@"
  .venv/bin/python tools/teacher_forced_ball_probe.py "$W/$name" "$W/$d-val" --episodes 40 | tee "$W/probe-$name.json"
}
data R "$R"
data Ra "$R, \"smooth_balls\": true"
data Rf "$R, \"ball_speed_min\": 5.0, \"ball_speed_max\": 7.0, \"max_ball_speed\": 8.0"
data F "$F"
arm R R                                   # the reference
arm Ra Ra                                 # anti-aliased balls at their sub-pixel position
arm Rf Rf                                 # balls faster than one latent cell a step
arm Rc R --dyn-head-conv 64               # a conv refiner at latent-cell resolution after the head
arm Rp R --dyn-patch 2                    # 64 tokens a frame (fifth session)
arm Rpw R --dyn-patch 2 --recipe-object-weight 10   # 64 tokens and the object-weighted loss together
arm Fp F --dyn-patch 2                    # 64 tokens on the textured 4-ball world F
arm Rwarp R --dyn-pred warp                 # a flow head: the previous frame resampled per latent cell, plus a residual
arm Fwarp F --dyn-pred warp                 # the flow head on the textured world F
arm Rwm R --dyn-pred warp --dyn-head-conv 64 --dyn-prev-frames 2   # the flow from a conv that sees the two last frames
arm Rc2 R --dyn-head-conv 64 --dyn-prev-frames 2                   # Rwm without the flow: the conv refiner with two last frames
arm Fwm F --dyn-pred warp --dyn-head-conv 64 --dyn-prev-frames 2   # Rwm on the textured world F
