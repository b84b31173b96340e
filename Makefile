# One entry point for people and CI. `make test` sets up everything the tests need on a bare
# Debian machine (TimescaleDB, Mosquitto, the virtualenv) and runs lint, types and tests.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8080
PYTEST_ARGS ?=

.PHONY: setup services venv fixtures check lint types test faults demo serve bench clean

setup: services venv fixtures

services:
	bash scripts/setup-services.sh

venv: $(VENV)/.installed

fixtures:
	bash scripts/fetch-fhir-examples.sh
	bash scripts/fetch-uplot.sh
	bash scripts/setup-browser.sh

$(VENV)/.installed: pyproject.toml scripts/setup-python.sh
	VENV=$(VENV) bash scripts/setup-python.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: venv
	$(BIN)/mypy

check: lint types

# `make test` runs the fault suite's quick subset (tests/faults, marked quick) at small sizes.
test: setup check
	$(BIN)/pytest $(PYTEST_ARGS)

# The whole fault suite of reliability.md at full size, each scenario printing its ledger
# (sizes: PULSEBRIDGE_FAULT_<NAME> variables, see tests/faults/).
faults: setup
	PULSEBRIDGE_FAULTS=full $(BIN)/pytest tests/faults -m faults -s -p no:cacheprovider $(PYTEST_ARGS)

# Mapping throughput, read latency on a 10-million-row TimescaleDB with ingest beside it (the
# first run loads the pulsebridge_bench database: a few minutes; later runs reuse it), then
# end-to-end MQTT ingest through the real gateway; bench/RESULTS.md is written from the figures.
BENCH_LOG ?= .bench-results.jsonl
bench: venv
	date +%s > $(BENCH_LOG).started
	set -o pipefail; $(BIN)/python bench/mapping.py | tee $(BENCH_LOG)
	set -o pipefail; $(BIN)/python bench/queries.py | tee -a $(BENCH_LOG)
	set -o pipefail; $(BIN)/python -m bench.ingest --profile .bench-profile | tee -a $(BENCH_LOG)
	echo "{\"bench\":\"make bench\",\"seconds\":$$(( $$(date +%s) - $$(cat $(BENCH_LOG).started) ))}" | tee -a $(BENCH_LOG)
	$(BIN)/python bench/report.py $(BENCH_LOG) > bench/RESULTS.md

demo: venv
	bash scripts/fetch-uplot.sh || echo "setup: the dashboard needs its chart library (npm); the API runs without it"
	$(BIN)/pulsebridge demo --port $(PORT)

serve: venv
	bash scripts/fetch-uplot.sh || echo "setup: the dashboard needs its chart library (npm); the API runs without it"
	$(BIN)/pulsebridge serve

clean:
	rm -rf $(VENV) .bench-results.jsonl .bench-results.jsonl.started .bench-profile .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
