# Two commands on a fresh machine: `make run` (the tiny curriculum) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/tiny.yaml
OUT ?= runs/tiny

.PHONY: run test lint install dev

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .

# Tests also check our verl export against verl's own configs and reward manager: verl without its GPU
# stack (no vLLM, no CUDA), plus what its config and reward modules import.
dev: install
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps 'verl==0.9.1'
	$(BIN)/pip install -q hydra-core ray tensordict codetiming orjson aiohttp

# Runs the default job into runs/tiny/; resumes it if a previous run was interrupted.
run: install
	@if [ -f $(OUT)/config.yaml ]; then $(BIN)/mathfirst run --out $(OUT) --resume; \
	else $(BIN)/mathfirst run --config $(CONFIG) --out $(OUT); fi

test: dev
	$(BIN)/python -m pytest -q

lint: dev
	$(BIN)/ruff check mathfirst tests && $(BIN)/ruff format --check mathfirst tests
