# Mailchat: `make run` starts everything, `make test` runs the whole suite.
# The virtualenv is created (and refreshed when pyproject.toml changes) on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-table eval clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m devtools.run

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict shared  # the domain code is fully typed

# The peers the benchmarks measure beside Mailchat (Flask-SocketIO), only for make bench.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	$(PY) -m bench

bench-table: $(STAMP)  # README's figures table from the last make bench's bench-results.json
	$(PY) -m bench.table --readme README.md

eval: $(STAMP)
	$(PY) -m bench.eval

clean:
	rm -rf $(VENV) .data .pytest_cache
