# worldloom: `make play` and `make test` install everything into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: install play test test-all train-arena clean

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

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

# Reproduces checkpoints/arena (see checkpoints/arena/README.md).
train-arena: $(STAMP)
	$(BIN)/python -m worldloom.recipes.arena --out checkpoints/arena

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
