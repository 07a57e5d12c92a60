# doctoctoc-bot. `make run` and `make test` create the environment when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint imports format bench pds clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/doctoctoc run --config config.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP) imports
	$(BIN)/ruff check bot classifiers digests tests benchmarks
	$(BIN)/ruff format --check bot classifiers digests tests benchmarks

# The layers of ARCHITECTURE.md, as import-linter contracts (.importlinter).
imports: $(STAMP)
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format bot classifiers digests tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
