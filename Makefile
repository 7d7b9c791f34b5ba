# `make lab` opens the course in JupyterLab (at the repository root, on notebook 00); `make test` runs the whole test suite; `make lint`
# checks style (ruff) without changing a file, `make format` fixes what ruff can fix.
# Each target creates the virtual environment .venv on first use: a machine needs only Python >= 3.10
# and make.
PYTHON ?= python3
LAB_ARGS ?=
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
LINT_PATHS := course_lib tests tools benchmarks

.PHONY: install lab test lint format notebooks benchmark check-prose

install: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $@

# The server starts at the repository root, so that the file browser reaches notebooks/ and
# solutions/ alike, and opens notebook 00.
lab: $(INSTALLED)
	$(BIN)/jupyter lab --ServerApp.root_dir=. $(LAB_ARGS) notebooks/00_setup_and_tour.ipynb

test: $(INSTALLED)
	COURSE_PROFILE=smoke $(BIN)/python -m pytest

lint: $(INSTALLED)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: $(INSTALLED)
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

notebooks: $(INSTALLED)
	$(BIN)/python tools/build_notebooks.py

benchmark: $(INSTALLED)
	$(BIN)/python benchmarks/trainer_vs_loop.py

# Runs every notebook of solutions/ on the cpu profile (about 40 min on 2 cores) and checks that
# each number quoted in its prose is printed by that run (tools/check_prose.py).
check-prose: $(INSTALLED)
	$(BIN)/python tools/check_prose.py --execute
