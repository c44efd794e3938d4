# The README's two commands: `make demo` and `make test`. Both create .venv when missing and
# (re)install when pyproject.toml changed, so they work from a clean clone on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# The instance file copied into $(DAGSTER_HOME) as dagster.yaml: dagster.yaml (SQLite under
# DAGSTER_HOME) or, for production, dagster.postgres.yaml (storage on PostgreSQL at
# $DAGSTER_PG_URL): `DAGSTER_YAML=dagster.postgres.yaml DAGSTER_PG_URL=postgresql+psycopg2://...
# make ui`.
DAGSTER_YAML ?= dagster.yaml

.PHONY: demo test lint types unit bench ui serve up install install-dev install-bench clean FORCE

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The bench-only peers (bt, skfolio) of benchmarks/bench_replay_peers.py.
$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-dev
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
install-bench: $(VENV)/.installed-bench

# Recopied when $(DAGSTER_YAML) changes or another file is chosen (.dagster_yaml names the last).
$(DAGSTER_HOME)/.dagster_yaml: FORCE
	@mkdir -p $(DAGSTER_HOME)
	@[[ "$$(cat $@ 2>/dev/null)" == "$(DAGSTER_YAML)" ]] || echo "$(DAGSTER_YAML)" > $@

$(DAGSTER_HOME)/dagster.yaml: $(DAGSTER_YAML) $(DAGSTER_HOME)/.dagster_yaml
	cp $(DAGSTER_YAML) $@

# The demo's state, shared by `make demo` (which writes it) and `make ui` (which shows it).
DEMO_OUT := $(CURDIR)/out/demo
DEMO_ENV := ALLOCATOR_LEDGER_URL=sqlite:///$(DEMO_OUT)/ledger.sqlite \
	ALLOCATOR_PRICES=$(DEMO_OUT)/prices ALLOCATOR_DATA_DIR=$(DEMO_OUT)/dagster \
	ALLOCATOR_INSTRUMENTS=$(DEMO_OUT)/instruments.csv ALLOCATOR_DASHBOARD=$(DEMO_OUT)/dashboard.html

## make demo: six strategies on real S&P 500 history through the whole allocator (paper broker)
demo: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/allocator demo --out out/demo

# One pytest-xdist worker per core (each on PostgreSQL databases of its own: tests/conftest.py);
# TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= auto

## make test: lint, types and the whole test suite (starts a local PostgreSQL for the ledger)
test: install-dev lint types unit

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

types: install-dev
	$(VENV)/bin/mypy

unit: install-dev $(DAGSTER_HOME)/dagster.yaml
	bash scripts/pg.sh start
	bash scripts/chromium.sh
	$(VENV)/bin/dagster definitions validate
	ALLOCATOR_TEST_PG_URL="$$(bash scripts/pg.sh url)" \
		ALLOCATOR_TEST_DAGSTER_PG_URL="$$(bash scripts/pg.sh dagster-url)" \
		$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile

## make bench: performance figures as JSON lines (ratios against baselines in the same run)
bench: install-bench
	@for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

## make serve: the strategy gateway on 127.0.0.1 (allocator serve; the demo's ledger by default)
serve: install $(DAGSTER_HOME)/dagster.yaml
	$(DEMO_ENV) $(VENV)/bin/allocator serve

## make up: the webserver, the daemon and the gateway together, stopped together (allocator up;
## DAGSTER_YAML=dagster.postgres.yaml for production storage, with DAGSTER_PG_URL set)
up: install
	$(VENV)/bin/allocator up --instance-yaml $(DAGSTER_YAML) --dagster-home $(DAGSTER_HOME)

## make ui: dagster dev on the persistent DAGSTER_HOME (DAGSTER_YAML picks the instance file)
ui: install $(DAGSTER_HOME)/dagster.yaml
	$(DEMO_ENV) $(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
