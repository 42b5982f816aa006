# distil: every command a user types. Each target sets the environment up first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PARAMS ?= params/demo.yaml
# the baseline of PARAMS: <params>-baseline.yaml beside it (distil demo writes it where it is missing)
BASELINE_PARAMS ?= $(PARAMS:.yaml=-baseline.yaml)
ARGS ?=
PORT ?= 8866
MODELS ?=
DISTIL := $(VENV)/bin/distil
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-fast lint bench demo teacher baseline lab dashboard study notebooks docs

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

# everything but training runs, notebooks and the browser (the tests marked slow): about a minute
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check distil tests benchmarks tools notebooks

# The whole series (distil demo): teacher (shipped, or trained once and then reused), preprocessing, teacher
# features, the baseline (BASELINE_PARAMS: shipped, reused, or trained beside the distilled student) and the
# distilled student, evaluation; ends with the comparison table. ARGS="-p key value ..." reaches every notebook.
demo: setup
	$(DISTIL) demo -f $(PARAMS) --baseline $(BASELINE_PARAMS) $(ARGS)

# Train the demo's teacher again (hours on a 2-core CPU; an interrupted training resumes where it stopped) and
# ship it, with its record, in assets/, from where make demo copies it instead of training.
teacher: setup
	$(DISTIL) run 00_teacher -f $(PARAMS) -p teacher_cache '' $(ARGS)
	$(DISTIL) teacher ship -f $(PARAMS) -p teacher_cache ''

# Train the baseline again (the student alone, until it stops improving) and ship it in assets/, from where
# make demo copies it instead of training it. A finished run of the same params is shipped as it is.
baseline: setup
	$(DISTIL) run 03_distill -f $(BASELINE_PARAMS) -p run_cache '' $(ARGS)
	$(DISTIL) ship-run -f $(BASELINE_PARAMS)

lab: setup
	$(VENV)/bin/jupyter lab notebooks --ip=127.0.0.1 --no-browser

# Voila on 127.0.0.1, on what PARAMS' series made; MODELS="label=path.pt,..." picks other models (paths from here).
dashboard: setup
	$(DISTIL) dashboard -f $(PARAMS) --port $(PORT) --models "$(MODELS)"

bench: setup
	$(PY) benchmarks/kd_cost.py
	$(PY) benchmarks/step_overhead.py
	$(PY) benchmarks/preprocess_throughput.py
	$(PY) benchmarks/inference_parity.py

# The study (many hours on a CPU; finished runs are reused, so it can stop and go on): the references
# on three seeds, every arm of params/study/ screened on seed 0 (choices on the validation split), the arm
# params/demo.yaml is (--chosen) on three seeds, then the report in benchmarks/README.md.
study: setup
	$(DISTIL) study --params $(PARAMS) --arms baseline baseline-long baseline-4x oracle --seeds 0 1 2
	$(DISTIL) study --params $(PARAMS) --seeds 0
	$(DISTIL) study --params $(PARAMS) --chosen --seeds 0 1 2
	$(DISTIL) study --report --readme benchmarks/README.md

# After changing distil/cfg/default.yaml or a params class: rewrite the notebooks' parameters cells and docs/settings.md.
notebooks docs: setup
	$(PY) tools/sync_notebook_parameters.py
	$(PY) tools/write_docs.py
