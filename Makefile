# Two entry points for a fresh machine: `make quickstart` and `make test`. Both install what they need.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install quickstart test lint bench

# torch first, pinned to the CPU build this machine carries; the project itself asks only for a range.
install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"

quickstart: install
	$(PYTHON) -m gristmill quickstart --out runs/quickstart

test: install
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m pytest

bench:
	$(PIP) install -q -e ".[bench]"
	@echo "benchmarks/*.py each compare gristmill with the tool it replaces; see benchmarks/RESULTS.md"
