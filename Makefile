# Switchboard: `make run` brings the stack up with demo traffic, `make test` runs the tests.
# Everything installs itself on a fresh machine: uv (pinned) into .tools/, then the whole uv
# workspace from the committed uv.lock into .venv (`uv sync --all-packages --frozen`).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
DURATION ?= 0
RATE ?= 10
MEMBERS_PYPROJECT := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml)

.PHONY: install proto proto-baseline lint test test-unit run bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) uv.lock pyproject.toml $(MEMBERS_PYPROJECT)
	$(UV) sync --all-packages --frozen --quiet
	touch $@

# The Node side of docs/CTI.md's signature check, which test_cti_schemas runs as written: installed here, not in
# the test (tests stay on loopback), and only where npm exists; without it that one test skips and says why.
NODE_WEBHOOKS := $(TOOLS)/node/node_modules/standardwebhooks
$(NODE_WEBHOOKS):
	@if command -v npm >/dev/null; then \
		npm install --prefix $(TOOLS)/node --no-save --silent --no-audit --no-fund standardwebhooks@1.3.0 \
		|| echo "npm could not install standardwebhooks: the Node signature check test will skip"; fi

install: $(VENV)/.installed $(NODE_WEBHOOKS)

# Regenerates libs/contracts/src/switchboard/v1 from proto/, then the CTI JSON Schemas (docs/schemas/cti)
# and the examples of docs/CTI.md from its descriptors (tests fail when any of them is stale).
proto: install
	$(PY) -m switchboard.platform.protogen
	$(PY) -m switchboard.platform.schemagen

# The previous contract that tests/unit/test_proto_compat.py holds proto/ to (additive changes only):
# proto/baseline/switchboard.v1.txtpb, rewritten from the current proto/. Run it when a release is cut.
proto-baseline: install
	$(PY) -m switchboard.platform.protocompat baseline

# ruff (lint + format), mypy on the libs, services and tools, the import contracts, and a lock
# that matches every pyproject.toml.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(UV) lock --check --quiet

test: install
	$(PY) -m pytest -q -ra --durations=15

test-unit: install
	$(PY) -m pytest -q -m "not integration and not e2e"

run: install
	$(VENV)/bin/switchboard run --rate $(RATE) --duration $(DURATION)

# Throughput and latency on this machine (not part of `make test`): bench/results.json and bench/results.md.
# BENCH_QUICK=1 for a short smoke run; other BENCH_* settings in bench/settings.py.
bench: install
	$(PY) -m bench

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
