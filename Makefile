# distil: every command a user types. Each target sets the environment up first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PARAMS ?= params/demo.yaml
NAME ?= demo
PORT ?= 8866
MODELS ?=
# The baseline: the same student with no teacher (and so no unlabeled images), on twice the distilled
# student's epochs: on the demo the student alone still gains at the end of the recipe's schedule and stops
# improving within twice it (README, "Does teaching pay?"): it stops early as the study's runs do (patience
# 100), where the distilled student runs its schedule to the end. Side by side with the distilled student (whose
# epochs train on twice the images) it takes about as long.
BASELINE_EPOCHS = $(shell $(PY) -c "import yaml; print(2 * (yaml.safe_load(open('$(PARAMS)')).get('epochs') or 30))")
BASELINE = -p teacher none -p epochs $(BASELINE_EPOCHS) -p patience 100
# It ships in assets/<name>-baseline (make baseline trains it again: 87 minutes on one thread beside another
# run, less alone on 2 cores); make demo copies it in (run_cache) where it is there, and trains it side by side
# with the distilled student where it is not.
SHIPPED_BASELINE := $(wildcard assets/$(NAME)-baseline/manifest.json)
NB_OUT := outputs/notebooks/$(NAME)
RUN_NOTEBOOK := $(PY) -m distil.run_notebook
export PYTHONUNBUFFERED := 1

.PHONY: setup test lint bench demo teacher baseline lab dashboard study notebooks

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check distil tests benchmarks tools notebooks

# The whole series on the demo, in notebook order: teacher (shipped, or trained once and then reused),
# preprocessing, teacher features, baseline (shipped, or trained) and distilled student, evaluation; ends
# with the comparison table. Where the baseline is trained too, the two students train at once on half the
# cores each: on a 2-core CPU two one-thread runs take less time together than one after the other.
STUDENT_THREADS := $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 1 ? n / 2 : 1 )))
demo: setup
	mkdir -p $(NB_OUT)
	$(RUN_NOTEBOOK) 00_teacher $(NB_OUT)/00_teacher.ipynb -f $(PARAMS)
	$(RUN_NOTEBOOK) 01_preprocessing $(NB_OUT)/01_preprocessing.ipynb -f $(PARAMS)
	$(RUN_NOTEBOOK) 02_teacher_features $(NB_OUT)/02_teacher_features.ipynb -f $(PARAMS)
ifneq ($(SHIPPED_BASELINE),)
	$(RUN_NOTEBOOK) 03_distill $(NB_OUT)/03_distill_baseline.ipynb -f $(PARAMS) $(BASELINE) \
		-p run_cache assets/$(NAME)-baseline
	$(RUN_NOTEBOOK) 03_distill $(NB_OUT)/03_distill.ipynb -f $(PARAMS)
else
	@echo "The baseline and the distilled student train side by side, $(STUDENT_THREADS) thread(s) each; the" \
		"baseline's progress goes to $(NB_OUT)/03_distill_baseline.log"
	OMP_NUM_THREADS=$(STUDENT_THREADS) $(RUN_NOTEBOOK) 03_distill $(NB_OUT)/03_distill_baseline.ipynb -f $(PARAMS) \
		$(BASELINE) > $(NB_OUT)/03_distill_baseline.log 2>&1 & baseline=$$!; \
	OMP_NUM_THREADS=$(STUDENT_THREADS) $(RUN_NOTEBOOK) 03_distill $(NB_OUT)/03_distill.ipynb -f $(PARAMS); distilled=$$?; \
	wait $$baseline || { echo "the baseline failed: see $(NB_OUT)/03_distill_baseline.log"; exit 1; }; \
	exit $$distilled
endif
	$(RUN_NOTEBOOK) 04_evaluate $(NB_OUT)/04_evaluate.ipynb -f $(PARAMS)
	$(PY) -m distil.report $(PARAMS)

# Train the demo's teacher (hours on a 2-core CPU; an interrupted training resumes where it stopped)
# and ship it, with its record, in assets/, from where make demo copies it instead of training.
teacher: setup
	mkdir -p $(NB_OUT)
	$(RUN_NOTEBOOK) 00_teacher $(NB_OUT)/00_teacher.ipynb -f $(PARAMS) -p teacher_cache ''
	$(PY) -m distil.teacher_training ship $(PARAMS) assets/$(NAME)-teacher.pt

# Train the demo's baseline (the student alone, until it stops improving) and ship it in assets/, from where
# make demo copies it instead of training it. A finished outputs/runs/<name>-baseline is shipped as it is.
baseline: setup
	mkdir -p $(NB_OUT)
	$(RUN_NOTEBOOK) 03_distill $(NB_OUT)/03_distill_baseline.ipynb -f $(PARAMS) $(BASELINE)
	$(PY) -m distil.shipped_runs ship outputs/runs/$(NAME)-baseline assets/$(NAME)-baseline

lab: setup
	$(VENV)/bin/jupyter lab notebooks --ip=127.0.0.1 --no-browser

# Voila on 127.0.0.1; MODELS="label=path.pt,..." picks the models compared.
dashboard: setup
	@echo "Dashboard at http://127.0.0.1:$(PORT)/ (Ctrl-C stops it)"
	DISTIL_MODELS="$(MODELS)" JUPYTER_PATH=$(CURDIR)/share/jupyter $(VENV)/bin/voila notebooks/05_dashboard.ipynb \
		--port=$(PORT) --no-browser --Voila.ip=127.0.0.1 --template=distil

bench: setup
	$(PY) benchmarks/step_overhead.py
	$(PY) benchmarks/preprocess_throughput.py
	$(PY) benchmarks/inference_parity.py

# The study (many hours on a CPU; finished runs are reused, so it can stop and go on): the references
# on three seeds, every arm of params/study/ screened on seed 0 (choices on the validation split), the arm
# params/demo.yaml is (--chosen) on three seeds, then the README's table.
study: setup
	$(PY) benchmarks/kd_study.py --params $(PARAMS) --arms baseline baseline-long baseline-4x oracle --seeds 0 1 2
	$(PY) benchmarks/kd_study.py --params $(PARAMS) --seeds 0
	$(PY) benchmarks/kd_study.py --params $(PARAMS) --chosen --seeds 0 1 2
	$(PY) benchmarks/kd_study.py --report --readme README.md

# After changing a params class: rewrite the notebooks' parameters cells from it.
notebooks: setup
	$(PY) tools/sync_notebook_parameters.py
