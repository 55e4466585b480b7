# Mailchat: `make run` starts everything, `make test` runs the whole suite.
# The virtualenv is created (and refreshed when pyproject.toml changes) on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-table chaos eval clean llm

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The LLM tests' server (llama.cpp's, compiled from PyPI's source: ~10 CPU-minutes, once, as pip
# caches the wheel). Without it those tests skip locally (and fail in CI).
LLM_STAMP := $(VENV)/.llm-installed
$(LLM_STAMP): pyproject.toml $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install --quiet -e '.[dev,llm]'
	touch $(LLM_STAMP)

llm: $(LLM_STAMP)

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

chaos: $(STAMP)  # faults injected into the real stack, judged from its history (README "Chaos")
	$(PY) -m bench.chaos
	$(PY) -m bench.chaos.netns  # several hosts: needs root (ip netns)

bench-table: $(STAMP)  # README's figures table from the last make bench's bench-results.json
	$(PY) -m bench.table --readme README.md

eval: $(STAMP)
	$(PY) -m bench.eval

clean:
	rm -rf $(VENV) .data .pytest_cache
