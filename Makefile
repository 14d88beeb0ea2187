# FreeGrad reproduction workbench. `make help` lists the targets.
SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
DVC     := $(VENV)/bin/dvc
STAMP   := $(VENV)/.installed
# The published freegrad 1.0.1, which the differential test runs in a subprocess (it shares our
# import name, so it lives in a folder of its own, never on sys.path).
PUBLISHED := $(VENV)/freegrad-1.0.1
# Stage commands call `python`; make sure it is the project's interpreter.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.DEFAULT_GOAL := help
.PHONY: help install lock test lint repro pdf paper-tools paper-tools-or-skip ui suc mlp lenet cnn bnn claims

# The descriptions start in one column, two spaces after the longest target name.
help: ## list the targets
	@echo "FreeGrad reproduction workbench"
	@grep -hE '^[a-z][a-z -]*:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{n[NR] = $$1; d[NR] = $$2; if (length($$1) > w) w = length($$1)} \
		END {for (i = 1; i <= NR; i++) printf "  make %-" w "s  %s\n", n[i], d[i]}'

# Re-runs only when a pyproject, the lock or the kernels' source changes (or the venv is
# missing).  Every package comes at the exact version of requirements.lock (torch's too).
$(STAMP): pyproject.toml libs/freegrad/pyproject.toml requirements.lock \
		libs/freegrad/tests-published.txt $(wildcard libs/freegrad/src/freegrad/csrc/*)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.lock -e libs/freegrad -e '.[dev]'
	@# freegrad 1.0.1 from PyPI, hash-checked, without its dependencies (torch is here already).
	rm -rf $(PUBLISHED) && $(PY) -m pip install --quiet --no-deps --only-binary :all: \
		--require-hashes --target $(PUBLISHED) -r libs/freegrad/tests-published.txt
	@# freegrad's compiled mask kernels, built now rather than inside a first timed epoch.
	$(PY) -m freegrad.kernels build
	@touch $@

install: $(STAMP) ## create .venv with requirements.lock's versions, libs/freegrad and the monorepo

# A scratch venv resolves the pyprojects' dependencies afresh; its `pip freeze` is the lock.
LOCK_VENV := .venv-lock
lock: ## refresh requirements.lock from the pyprojects (then `make install` uses it)
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet -e libs/freegrad -e '.[dev]'
	$(LOCK_VENV)/bin/python -c 'import platform as p; print("# Exact versions for make install" \
		" (pip -c), written by make lock on Python", p.python_version(), p.machine())' > requirements.lock.new
	$(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable >> requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf $(LOCK_VENV)

# FREEGRAD_PUBLISHED: the differential test fails, not skips, when freegrad 1.0.1 is missing.
test: install paper-tools-or-skip ## set up, then run all tests (library, pipeline, paper)
	FREEGRAD_PUBLISHED=$(CURDIR)/$(PUBLISHED) $(PY) -m pytest tests

lint: install ## ruff over the whole monorepo (libs, experiments, paper, benchmarks, tests)
	$(VENV)/bin/ruff check .

# The paper's toolchain is present when a page compiles with its template
# (paper/toolchain.sh probe); the Debian packages are listed in paper/apt-packages.txt.
paper-tools: ## probe the paper's TeX toolchain; install paper/apt-packages.txt as root, else say how
	@paper/toolchain.sh ensure

# For `make test`: without the toolchain (and not root) the paper tests skip, saying why.
paper-tools-or-skip:
	@paper/toolchain.sh ensure "the paper tests will be skipped" || true

repro: install paper-tools ## set up (the paper's toolchain too, as root), then the whole pipeline
	$(DVC) repro

suc: install ## experiment 1: single-unit classifier on "Ones"
	$(DVC) repro train@suc

lenet bnn: install ## experiments 3 and 5 (LeNet-5 on MNIST; binary units)
	@$(PY) -m experiments.config --check $@
	$(DVC) repro train@$@

mlp: install ## experiment 2: MLP on DIGITS and its batch-size x learning-rate sweep
	$(DVC) repro train@mlp train@mlp_sweep

cnn: install ## experiment 4: gradient jamming in LeNet-5, on MNIST and Fashion-MNIST
	$(DVC) repro train@cnn train@cnn_fashion

claims: install ## tables, claims and figures from whatever has been trained
	$(DVC) repro report claims figures

pdf: install paper-tools ## build paper/paper.pdf (`dvc repro paper`: the paper and what it needs)
	$(DVC) repro paper

HOST ?= 127.0.0.1
PORT ?= 5000
ui: install ## MLflow UI on the project's store at HOST:PORT (MLFLOW_TRACKING_URI overrides)
	$(VENV)/bin/mlflow ui --host $(HOST) --port $(PORT) \
		--backend-store-uri "$$($(PY) -m experiments.training.tracking --uri)" \
		--default-artifact-root "$$($(PY) -m experiments.training.tracking --artifacts)"
