# shahihooks — a newcomer's Makefile. `make demo` and `make test` set everything up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install test lint format typecheck mypy demo flower bench soak redis tools rabbitmq clean

all: lint typecheck test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

redis: ## make sure a Redis answers at SHAHIHOOKS_REDIS_URL (starts the machine's one if it is down)
	@$(BIN)/python scripts/ensure_redis.py

tools: ## make sure php, faketime, node and chromium run (installs Debian's packages if missing)
	@bash scripts/ensure_tools.sh

rabbitmq: ## make sure a RabbitMQ answers on 127.0.0.1:5672 (the broker tests use it)
	@bash scripts/ensure_rabbitmq.sh

test: install redis tools rabbitmq
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

# Flower's task list: the delivery (event → URL, attempt) is the args column
FLOWER_COLUMNS := name,uuid,state,args,exception,retries,received,runtime,worker

flower: install redis ## Flower on http://127.0.0.1:5555 (workers need -E); FLOWER_BASIC_AUTH=user:pw
	$(BIN)/celery -A shahihooks.app flower --address=127.0.0.1 --port=5555 --tasks_columns=$(FLOWER_COLUMNS)

bench: install redis ## throughput against baselines at the same setups, waits, recovery (about an hour)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

soak: install redis ## thousands of deliveries with failures and a worker restart, then the ledger
	$(BIN)/python scripts/soak.py

clean:
	rm -rf $(VENV) .venv-peer .pytest_cache .mypy_cache .ruff_cache build *.egg-info
