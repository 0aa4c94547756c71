# shahihooks — a newcomer's Makefile. `make demo` and `make test` set everything up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install test lint format typecheck mypy demo flower bench soak redis php clean

all: lint typecheck test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

redis: ## make sure a Redis answers at SHAHIHOOKS_REDIS_URL (starts the machine's one if it is down)
	@$(BIN)/python scripts/ensure_redis.py

php: ## make sure `php` runs (installs Debian's php-cli if missing): the PHP receiver tests need it
	@bash scripts/ensure_php.sh

test: install redis php
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check shahihooks tests examples bench celeryconfig.py scripts
	$(BIN)/ruff format --check shahihooks tests examples bench celeryconfig.py scripts

format: install
	$(BIN)/ruff format shahihooks tests examples bench celeryconfig.py scripts
	$(BIN)/ruff check --fix shahihooks tests examples bench celeryconfig.py scripts

typecheck: install
	$(BIN)/mypy

mypy: typecheck

demo: install redis
	$(BIN)/python scripts/demo.py

flower: install redis ## Flower on http://127.0.0.1:5555 (start workers with -E for task events)
	$(BIN)/celery -A shahihooks.app flower --port=5555

bench: install redis ## throughput against baselines at the same setups, waits, recovery (about an hour)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

soak: install redis ## thousands of deliveries with failures and a worker restart, then the ledger
	$(BIN)/python scripts/soak.py

clean:
	rm -rf $(VENV) .venv-peer .pytest_cache .mypy_cache .ruff_cache build *.egg-info
