# goodwill — two commands matter: `make demo` and `make test`. Both set themselves up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit fuzz bench soak clean

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

# Not part of `make test`: ~30-40 min (SOAK_S=600 per broker); SOAK_ARGS="--broker redis" etc.
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .goodwill .pytest_cache .mypy_cache .ruff_cache
