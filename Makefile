# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
# `make test` also installs the optional extras (Ray, export, results formats, fuzzing), whose
# tests are part of the suite; `make demo` needs only the runtime requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# pytest-xdist workers: most tests wait on compiling and starting processes more than they compute,
# so two workers on two cores take about 60 % of the serial time; each test file stays on one
# worker (its module fixtures are built once). TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
EXTRAS := requirements-ray.txt requirements-export.txt
# installed without their declared dependencies (see the file for why)
NO_DEPS_EXTRAS := requirements-results.txt

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

$(VENV)/.extras-installed: $(VENV)/.installed $(EXTRAS) $(NO_DEPS_EXTRAS)
	$(PY) -m pip install -q $(foreach f,$(EXTRAS),-r $(f))
	$(PY) -m pip install -q --no-deps $(foreach f,$(NO_DEPS_EXTRAS),-r $(f))
	touch $@

.PHONY: setup extras demo test lint
setup: $(VENV)/.installed

extras: $(VENV)/.extras-installed

demo: setup
	$(PY) all_datasets_training.py --datasets GunPoint --models lstmfcn --cells 8 --epochs 500
	$(PY) visualize_cam.py --dataset GunPoint --model lstmfcn --cells 8 --classwise

test: setup extras
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: setup
	$(PY) -m ruff check .
