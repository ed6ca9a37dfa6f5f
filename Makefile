# The README's two commands. Both create .venv if missing and install the project into it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUN_DIR ?= runs/demo

.PHONY: demo test test-fast install lint

install: $(STAMP)

# torch is pinned first to the CPU build that pip finds locally; a bare range would let pip
# pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q 'torch==2.13.0' || $(PY) -m pip install -q 'torch>=2.6,<2.14' --index-url https://download.pytorch.org/whl/cpu
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/busgen-server demo --config configs/cpu-demo.yaml --out $(RUN_DIR)

test: $(STAMP)
	$(PY) -m pytest

# For developers: skip the slow end-to-end tests.
test-fast: $(STAMP)
	$(PY) -m pytest -m 'not e2e'

# ruff: lint and formatting check (CI runs it before the tests).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
