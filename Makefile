# Commands for a fresh machine: `make run`, `make sandbox`, `make test`. Each builds its own .venv:
# run and sandbox install the runtime only; test, lint, format and bench add the dev tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME := $(VENV)/.installed-runtime

.PHONY: run sandbox test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME)

run: $(RUNTIME)  ## run the bot (reads .env; needs COINWARDEN_TELEGRAM_TOKEN)
	$(BIN)/python -m bot run

sandbox: $(RUNTIME)  ## try the bot in this terminal: local Telegram and demo exchanges, no token
	$(BIN)/python -m bot sandbox

test: $(STAMP)  ## the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP)  ## what CI checks besides the tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)  ## performance goals, printed as JSON (not part of the tests)
	$(BIN)/python bench/pool_memory.py
	$(BIN)/python bench/sweep_calls.py
	$(BIN)/python bench/alert_sweep.py
	$(BIN)/python bench/alert_delivery.py
	$(BIN)/python bench/portfolio_refresh.py
	$(BIN)/python bench/rebalance_planner.py
	$(BIN)/python bench/execution_faults.py
	$(BIN)/python bench/workers.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
