# worldloom: `make play` and `make test` install everything into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: install browser play test test-all train-arena bench-arena clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Pin torch first so nothing pulls the CUDA build.
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

play: $(STAMP)
	$(BIN)/worldloom play --checkpoint arena

# Headless Chromium for tests/serve/test_browser.py (Debian package; Playwright drives it, no download).
# Never fails: without root or network the browser test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
	  ( [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ) || \
	  echo "chromium unavailable: browser tests will skip"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -q -m ''

# Reproduces checkpoints/arena (see checkpoints/arena/README.md).
train-arena: $(STAMP)
	$(BIN)/python -m worldloom.recipes.arena --out checkpoints/arena

# The numbers in docs/BENCHMARKS.md: held-out eval (50 episodes, 4 context + 32 generated frames),
# the 2,000-frame rollout bench (memory/time flatness) and the WebSocket bench (3,000 frames).
HELDOUT := runs/arena/data-heldout
$(HELDOUT)/meta.json: | $(STAMP)
	$(BIN)/worldloom collect arena --episodes 50 --steps 64 --seed 100000 --out $(HELDOUT) --overwrite

bench-arena: $(STAMP) $(HELDOUT)/meta.json
	$(BIN)/worldloom eval --checkpoint arena --data $(HELDOUT) --episodes 50 --horizon 32 --out runs/eval-arena.json
	$(BIN)/worldloom bench --checkpoint arena --frames 2000
	$(BIN)/worldloom bench --checkpoint arena --mode ws --frames 3000

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
