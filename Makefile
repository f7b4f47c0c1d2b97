# Switchboard: `make run` brings the stack up with demo traffic, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DURATION ?= 0
RATE ?= 20

.PHONY: install proto test test-unit run bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Regenerates src/switchboard/v1 from proto/ (tests fail when it is stale).
proto: install
	$(PY) -m switchboard.platform.protogen

test: install
	$(PY) -m pytest -q -ra

test-unit: install
	$(PY) -m pytest -q -m "not integration and not e2e"

run: install
	$(VENV)/bin/switchboard run --rate $(RATE) --duration $(DURATION)

# Throughput and latency on this machine (not part of `make test`): bench/results.json and bench/results.md.
# BENCH_QUICK=1 for a short smoke run; other BENCH_* settings in bench/settings.py.
bench: install
	$(PY) -m bench

clean:
	rm -rf var .pytest_cache
