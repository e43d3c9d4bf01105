# neural-sorter: every entry point installs what it needs first (idempotent, quick when nothing changed).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
# A CPU build of torch goes in first so nothing later pulls a multi-GB CUDA build. Override on other
# platforms, e.g. `make install TORCH_SPEC='torch>=2.2'`.
TORCH_SPEC ?= torch==2.13.0
export DAGSTER_HOME ?= $(or $(NEURAL_SORTER_HOME),$(HOME)/.neural-sorter)/dagster
export NEURAL_SORTER_HOME ?= $(HOME)/.neural-sorter

.PHONY: install sort test test-fast lint demo ui bench browser-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

sort: install
	@test -n "$(SRC)" -a -n "$(OUT)" || { echo "usage: make sort SRC=<folder> OUT=<folder> [ARGS='--backend cnn ...']"; exit 2; }
	$(BIN)/neural-sorter sort "$(SRC)" --out "$(OUT)" $(ARGS)

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: install
	$(BIN)/python -m neural_sorter.demo $(ARGS)

ui: install
	$(BIN)/python -m neural_sorter.launcher ui --host 127.0.0.1 --port $(or $(PORT),3000)

bench: install
	$(BIN)/python bench/quality.py --backend cnn --method kmeans --k 8

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
