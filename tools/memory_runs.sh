#!/bin/bash
# The memory issue's fifth-session measurements (docs/BENCHMARKS.md, "Memory"), end to end on this 2-core box:
# data, window-only and place-memory fine-tunes of the shipped arena, their self-rollout students, the
# persistence suite on every memory side by side, and each memory's cost. About 75 min with nothing else running.
#
#     bash tools/memory_runs.sh [WORK]        (WORK defaults to runs/mem)
set -euo pipefail
W=${1:-runs/mem}
WL=".venv/bin/python -m worldloom.cli"
mkdir -p "$W"
$WL collect --like arena --episodes 120 --steps 300 --seed 0 --out "$W/data-train" --overwrite
persist() {  # checkpoint, out, memories, probes
  $WL eval --checkpoint "$1" --suite persistence --memories "$3" --ks 16,64,256 --probes "$4" --out "$2"
}
persist arena "$W/arena-persist" window,place,similar 3
for arm in place none; do  # teacher-forced fine-tunes: with place memory, and the window-only control
  $WL train dynamics --config checkpoints/arena --init checkpoints/arena --data "$W/data-train" \
    --tokenizer checkpoints/arena --out "$W/ft-$arm" --train-steps 400 --train-lr 2e-4 --train-warmup 20 \
    --recipe-memory $arm --train-threads 2
  persist "$W/ft-$arm" "$W/ft-$arm-persist" window,place,similar 3
done
for arm in place none; do  # self-rollout students of the control, with and without place memory
  $WL distill --teacher "$W/ft-none" --init "$W/ft-none" --data "$W/data-train" --out "$W/st-$arm" \
    --recipe-student-steps 1 --sim-steps 1 --recipe-w-true 0.5 --train-steps 100 --train-warmup 10 \
    --train-lr 2e-4 --train-ema-decay 0.95 --train-ckpt-every 50 --train-threads 2 --recipe-memory $arm
  persist "$W/st-$arm" "$W/st-$arm-persist" window,place,similar 3
  persist "$W/st-$arm" "$W/st-$arm-persist8" window,place 8
done
for mem in window place similar; do  # cost of each memory (run on an idle machine)
  $WL bench --checkpoint arena --frames 10000 --json --memory $mem > "$W/bench-$mem.json"
done
$WL bench --checkpoint arena --mode ws --frames 3000 --json --memory place > "$W/bench-ws-place.json"
# Sixth session: the same two students without the teacher term (--recipe-w-teacher 0), on the 8 probes.
for arm in place none; do
  $WL distill --teacher "$W/ft-none" --init "$W/ft-none" --data "$W/data-train" --out "$W/wt0-$arm" \
    --recipe-student-steps 1 --sim-steps 1 --recipe-w-true 0.5 --recipe-w-teacher 0 --train-steps 100 --train-warmup 10 \
    --train-lr 2e-4 --train-ema-decay 0.95 --train-ckpt-every 50 --train-threads 2 --recipe-memory $arm
  $WL eval --checkpoint "$W/wt0-$arm" --suite persistence --memories window,place --ks 16,64,256 --probes 8 --out "$W/wt0-$arm-persist8"
done
