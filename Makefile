# goodwill — two commands matter: `make demo` and `make test`. Both set themselves up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit fuzz bench bench-process bench-sql bench-cold bench-sync-pace bench-store bench-floors soak screenshots clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "goodwill needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "Installing goodwill and its dependencies into $(VENV) (first run, or after pyproject.toml changes)…"
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[all,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/goodwill demo

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

# The fuzz tests also run (briefly) in `make test`; here with thousands of examples each.
fuzz: $(STAMP)
	GOODWILL_FUZZ=long $(BIN)/pytest -q --timeout=3600 tests/fuzz

bench: $(STAMP)
	$(BIN)/python -m bench.slots_bench

# Not part of `make test`: per-process costs, old path vs new (BENCH_ARGS="--owners 2000").
bench-process: $(STAMP)
	$(BIN)/python -m bench.process_costs $(BENCH_ARGS)

# Not part of `make test`: the end-to-end cost of a user-plan (tick + workers on PostgreSQL +
# Redis, Google emulator); BENCH_ARGS="--users 100,1000", "--users 20 --store sqlite", "--json".
bench-pipeline: $(STAMP)
	$(BIN)/python -m bench.pipeline $(BENCH_ARGS)

# Not part of `make test`: SQL round trips per planning round and per booking on PostgreSQL,
# the code at git HEAD against the working tree; BENCH_ARGS="--json", "--log".
bench-sql: $(STAMP)
	$(BIN)/python -m bench.sql_round_trips $(BENCH_ARGS)

# Not part of `make test`: cold start of `goodwill plan`/`validate`/`--help`, the code at git HEAD
# against the working tree (median of 15 fresh interpreters); BENCH_ARGS="--runs 30", "--json".
bench-cold: $(STAMP)
	$(BIN)/python -m bench.cold_start $(BENCH_ARGS)

# Not part of `make test`: sync passes per owner per day, the tick's pace by lead against every
# 15 min, projected onto 100,000 owners (deterministic); BENCH_ARGS="--per-week 0.5".
bench-sync-pace: $(STAMP)
	$(BIN)/python -m bench.sync_pace $(BENCH_ARGS)

# Not part of `make test`: Python CPU of the store's work per planning round and per booking on
# PostgreSQL, git HEAD against the working tree; BENCH_ARGS="--owners 60 --runs 5".
bench-store: $(STAMP)
	$(BIN)/python -m bench.store_cpu $(BENCH_ARGS)

# Not part of `make test`: the CPU floor of the prescribed libraries (Google client, SQLAlchemy +
# psycopg, dramatiq + Redis) for one user-plan's calls; BENCH_ARGS="--from-pipeline run.json".
bench-floors: $(STAMP)
	$(BIN)/python -m bench.floors $(BENCH_ARGS)

# Not part of `make test`: ~30-40 min (SOAK_S=600 per broker); SOAK_ARGS="--broker redis" etc.
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# docs/screenshots/owner-page-{desktop,phone}.png from a demo run, through Debian's Chromium.
screenshots: $(STAMP)
	$(BIN)/python -m tests.browser.screenshots

clean:
	rm -rf $(VENV) .goodwill .pytest_cache .mypy_cache .ruff_cache
