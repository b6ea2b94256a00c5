# `make demo` and `make test` work on a fresh clone: both build .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test reproduce-sinusoid clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.demo_sinusoid --output_dir=runs/demo

test: $(STAMP)
	$(PY) -m pytest -q tests

reproduce-sinusoid: $(STAMP)
	$(PY) -m experiments.reproduce_sinusoid --output_dir=results

clean:
	rm -rf runs $(VENV)
