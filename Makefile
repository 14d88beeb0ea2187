# FreeGrad reproduction workbench. `make help` lists the targets.
SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
DVC     := $(VENV)/bin/dvc
STAMP   := $(VENV)/.installed
TORCH   := torch==2.14.1 torchvision==0.29.1
# Stage commands call `python`; make sure it is the project's interpreter.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.DEFAULT_GOAL := help
.PHONY: help install test lint repro pdf paper-tools ui suc mlp lenet cnn bnn claims

help: ## list the targets
	@echo "FreeGrad reproduction workbench"
	@grep -E '^[a-z][a-z -]*:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# Re-runs only when a pyproject changes (or the venv is missing).
$(STAMP): pyproject.toml libs/freegrad/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e libs/freegrad -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv; install torch 2.14.1, libs/freegrad and the monorepo (no-op when done)

test: install ## set up, then run all tests (library and pipeline)
	$(PY) -m pytest tests

lint: install ## ruff over the monorepo code
	$(VENV)/bin/ruff check experiments tests/pipeline

# The paper stage needs pandoc and xelatex (Debian: pandoc, texlive-xetex).
PAPER_TOOLS := pandoc xelatex
PAPER_DEBS  := pandoc texlive-xetex
PAPER_APT   := apt-get install -y --no-install-recommends $(PAPER_DEBS)

paper-tools: ## install pandoc and xelatex with apt-get when missing (root only; else say how)
	@missing=""; for t in $(PAPER_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing: apt-get update && $(PAPER_APT)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(PAPER_APT); \
	else \
		echo "note:$$missing not found; the paper stage needs them. Install with:" >&2; \
		echo "  sudo apt-get install $(PAPER_DEBS)" >&2; \
	fi

repro: install paper-tools ## set up (and pandoc/xelatex as root), then the whole DVC pipeline
	$(DVC) repro

suc: install ## experiment 1: single-unit classifier on "Ones"
	$(DVC) repro train@suc

lenet bnn: install ## experiments 3 and 5 (LeNet-5 on MNIST; binary units)
	@$(PY) -m experiments.params --check $@
	$(DVC) repro train@$@

mlp: install ## experiment 2: MLP on DIGITS and its batch-size x learning-rate sweep
	$(DVC) repro train@mlp train@mlp_sweep

cnn: install ## experiment 4: gradient jamming in LeNet-5, on MNIST and Fashion-MNIST
	$(DVC) repro train@cnn train@cnn_fashion

claims: install ## tables, claims and figures from whatever has been trained
	$(DVC) repro report claims figures

pdf: install ## build paper/paper.pdf (`dvc repro paper`: the paper and what it needs)
	@missing=""; for t in $(PAPER_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		echo "error:$$missing not found; the paper needs pandoc and xelatex. Install with:" >&2; \
		echo "  sudo apt-get install $(PAPER_DEBS)" >&2; \
		exit 1; \
	fi
	$(DVC) repro paper

ui: install ## MLflow UI on the project's store (MLFLOW_TRACKING_URI overrides)
	$(VENV)/bin/mlflow ui --backend-store-uri "$$($(PY) -m experiments.tracking --uri)" \
		--default-artifact-root "$$($(PY) -m experiments.tracking --artifacts)"
