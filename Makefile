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

.PHONY: install sort test test-fast lint demo ui bench browser-deps clean view

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,distributed,k8s]'
	@touch $(STAMP)

sort: install
	@test -n "$(SRC)" || { echo "usage: make sort SRC=<folder> [OUT=<folder>] [ARGS='--backend cnn ...']"; exit 2; }
	$(BIN)/neural-sorter sort "$(SRC)" $(if $(OUT),--out "$(OUT)") $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint browser-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The viewer's end-to-end test drives Debian's Chromium; installed here when missing and we may (root + apt).
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium + chromium-driver for the viewer's browser test"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "note: chromium/chromedriver missing and not root: the browser test will be skipped"; fi

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: install
	$(BIN)/python -m neural_sorter.demo $(ARGS)

ui: install
	$(BIN)/python -m neural_sorter.launcher ui --host 127.0.0.1 --port $(or $(PORT),3000)

view: install
	$(BIN)/neural-sorter view --port $(or $(PORT),8050)

bench: install
	$(BIN)/python bench/quality.py --backend cnn --method kmeans --k 8

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
