# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

.PHONY: setup demo test lint
setup: $(VENV)/.installed

demo: setup
	$(PY) all_datasets_training.py --datasets GunPoint --models lstmfcn --cells 8 --epochs 500
	$(PY) visualize_cam.py --dataset GunPoint --model lstmfcn --cells 8 --classwise

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
