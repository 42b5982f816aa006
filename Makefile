# distil: every command a user types. `make test` and `make demo` set the environment up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PARAMS ?= params/demo.yaml
export PYTHONUNBUFFERED := 1

.PHONY: setup test lint bench demo lab dashboard study clean-outputs

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check distil tests benchmarks

bench: setup
	$(PY) benchmarks/step_overhead.py
