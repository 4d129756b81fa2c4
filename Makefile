# Two commands: `make run` starts the adapter on its embedded defaults,
# `make test` runs the whole test suite. Each creates .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test test-fast lint bench bench-full demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The service on its embedded defaults: SQLite in var/, the sample clients in config/.
run: $(STAMP)
	ADAPTER_CLIENTS_FILE="$${ADAPTER_CLIENTS_FILE:-config/clients.sample.yaml}" $(BIN)/ggop-adapter serve

# Everything, with a local PostgreSQL for the store tests when one can be had.
test: $(STAMP)
	ADAPTER_TEST_POSTGRES_URL="$${ADAPTER_TEST_POSTGRES_URL:-$$(tools/pg-test-server.sh)}" \
	  $(BIN)/python -m pytest -m "" -q

# ruff and mypy with the project's configuration (pyproject.toml); CI runs this before the tests.
lint: $(STAMP)
	$(BIN)/ruff check adapter tests bench tools
	$(BIN)/mypy

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/ggop-adapter demo

# Every benchmark of issue 15 against the real parts (a private PostgreSQL, the service under
# gunicorn, a FHIR server): a table and var/bench/*.json. Quick by default; bench-full runs
# the issue's scale (1M Tasks, 100k messages) and takes long. BENCH_ARGS="--only convert pull".
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-full: $(STAMP)
	$(BIN)/python bench/run.py --full $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
