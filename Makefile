# Conveyor: every set-up step lives here, so a fresh clone needs only `make run` / `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test check bench bench-peers bench-peers-venv faults fmt clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e . --group test --group lint
	touch $(STAMP)

## Start Conveyor on ./conveyor.db with an example lambda and show events flowing (Ctrl-C stops).
run: $(STAMP)
	$(BIN)/python examples/demo.py

## Install what the tests need and run the whole suite.
test: $(STAMP)
	$(BIN)/python -m pytest

## ruff, ruff format --check and mypy --strict.
check: $(STAMP)
	$(BIN)/ruff check src tests bench examples faults
	$(BIN)/ruff format --check src tests bench examples faults
	$(BIN)/mypy --strict --exclude '^tests/(flow/)?conftest\.py$$' src tests faults
	$(BIN)/mypy --strict tests/conftest.py  # alone: mypy names each "conftest", as tests/e2e's
	$(BIN)/mypy --strict tests/flow/conftest.py

## Benchmarks (never part of `make test`); the tables go to docs/benchmarks.md. The PostgreSQL
## runs use CONVEYOR_BENCH_POSTGRES, else the local server when pg_isready finds one.
PG_BENCH ?= $(or $(CONVEYOR_BENCH_POSTGRES),$(shell pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && echo postgresql://postgres@127.0.0.1:5432/test))
bench: $(STAMP) bench-peers-venv
	$(BIN)/python -m bench.drain --write-doc docs/benchmarks.md
	$(BIN)/python -m bench.timers --write-doc docs/benchmarks.md
	$(BIN)/python -m bench.schemas --write-doc docs/benchmarks.md
	$(BIN)/python -m bench.delivery --write-doc docs/benchmarks.md
	$(BIN)/python -m bench.publisher --write-doc docs/benchmarks.md
ifneq ($(PG_BENCH),)
	$(BIN)/python -m bench.drain --postgres "$(PG_BENCH)" --section pg1 --write-doc docs/benchmarks.md
	$(BIN)/python -m bench.drain --postgres "$(PG_BENCH)" --nodes 2 --section pg2 --write-doc docs/benchmarks.md
else
	@echo "no PostgreSQL found: skipping the PostgreSQL drain benchmarks"
endif

## The peers the benchmarks compare with (Celery on Redis), in their own venv: never beside
## Conveyor's dependencies. Best effort: when it cannot be installed, bench.timers prints a
## skip line for the Celery case instead of failing.
PEERS       := .venv-peers
PEERS_STAMP := $(PEERS)/.installed
bench-peers-venv: $(PEERS_STAMP)

$(PEERS_STAMP): bench/peers/requirements.txt
	@rm -rf $(PEERS)
	$(PYTHON) -m venv $(PEERS)
	@echo '*' > $(PEERS)/.gitignore
	$(PEERS)/bin/python -m pip install --quiet -r bench/peers/requirements.txt \
		&& touch $(PEERS_STAMP) \
		|| echo "could not install bench/peers/requirements.txt: the Celery comparison will be skipped"

## Conveyor against Celery, Dramatiq and taskiq on a throwaway Redis (without persistence, then
## with appendonly + appendfsync everysec), two rounds A B A B (~30 min on 2 cores); writes
## the peers section of docs/benchmarks.md. Not part of `make bench` (which stays ~10 min) and
## never of `make test`. `python -m bench.peers.compare --quick` is a ~3 min smoke run.
bench-peers: $(STAMP) bench-peers-venv
	$(BIN)/python -m bench.peers.compare --write-doc docs/benchmarks.md

## The fault suite: serve and workers driven over HTTP under kill -9 (>= 30 cycles), SIGSTOP, a
## full disk (a tmpfs, when the machine lets us mount one) and two PostgreSQL nodes, each run
## checked for loss, duplicates, order, early deliveries and keys stored twice (~11 min here);
## writes the table to docs/reliability.md and fails when a promise broke. Never part of
## `make test`, which runs its short version (tests/e2e/test_faults_short.py). The two-node
## run uses CONVEYOR_FAULTS_POSTGRES, else the local server when pg_isready finds one.
PG_FAULTS ?= $(or $(CONVEYOR_FAULTS_POSTGRES),$(shell pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && echo postgresql://postgres@127.0.0.1:5432/test))
faults: $(STAMP)
	$(BIN)/python -m faults $(if $(PG_FAULTS),--postgres "$(PG_FAULTS)") --write-doc docs/reliability.md

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench examples faults
	$(BIN)/ruff format src tests bench examples faults

clean:
	rm -rf $(VENV) .venv-peers .pytest_cache .mypy_cache .ruff_cache conveyor.db conveyor.db-wal conveyor.db-shm
