# The two-command quick start: `make train` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup train test lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,sweep,export,timm]"
	touch $(STAMP)

train: setup
	$(BIN)/imgcls train $(ARGS)

# One pytest worker per core (tests pin one torch thread each); TEST_WORKERS=0 runs in-process.
# worksteal: a worker that runs out of tests takes queued ones from the other, so a few long
# end-to-end tests near the end of the collection do not leave one core idle.
TEST_WORKERS ?= 2
TEST_DIST ?= worksteal

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist $(TEST_DIST) $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) build dist *.egg-info
