# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DB ?= sqlite:///event-detector.db
EVENTS_DIR ?= examples/events

.PHONY: run test bench bench-quick lint format install install-test system-deps web-deps gateway-deps wheel clean

run: install web-deps
	$(BIN)/event-detector serve --demo --db "$(DB)" --events-dir "$(EVENTS_DIR)" --host $(HOST) --port $(PORT)

test: install-test system-deps web-deps gateway-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test system-deps
	$(BIN)/python -m bench

bench-quick: install-test system-deps
	$(BIN)/python -m bench --quick

lint: install-test
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install-test
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when the dependency list changes.
$(VENV)/.service-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[service,otel]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.service-installed

install: $(VENV)/.service-installed
install-test: $(VENV)/.test-installed

# PostgreSQL server programs and Debian's Chromium for the browser tests.
system-deps:
	@scripts/ensure-system-deps

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# GraphiQL's browser files, served by the service itself (no CDN).
web/graphiql/node_modules/.installed: web/graphiql/package.json web/graphiql/package-lock.json
	cd web/graphiql && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web-deps: web/node_modules/.installed web/graphiql/node_modules/.installed

# A wheel in dist/ carrying the web client, GraphiQL, the Hasura metadata, schema.sql and
# the demo's modules (see service/assets.py): `pip install 'dist/…whl[service]'`.
wheel: install web-deps
	rm -rf build
	$(BIN)/pip wheel --no-deps --wheel-dir dist .

# Test-only npm packages: a real Apollo gateway, a second subgraph, graphql-js (tests/gateway/).
tests/gateway/node_modules/.installed: tests/gateway/package.json tests/gateway/package-lock.json
	cd tests/gateway && npm ci --no-audit --no-fund --loglevel=error
	touch $@

gateway-deps: tests/gateway/node_modules/.installed

clean:
	rm -rf $(VENV) web/node_modules web/graphiql/node_modules tests/gateway/node_modules .pytest_cache build dist
