# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
# On the project's machines these torch/torchvision wheels come from local disk (see README).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
CORES ?= all
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo report test test-fast lint format slurm-deps clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report report.html

report: setup
	$(BIN)/snakemake --report report.html

# Python: ruff (lint + format), rules: snakefmt, workflow: snakemake --lint, docs: mkdocs build --strict
# (a broken link, anchor or missing page fails; built into a temporary folder). Tools come with '.[test]'.
lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint
	site=$$(mktemp -d) && $(BIN)/mkdocs build --strict --site-dir "$$site"; status=$$?; rm -rf "$$site"; exit $$status

format: setup
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/snakefmt Snakefile rules

# Debian's SLURM, munge and MariaDB for the real-cluster test (tests/test_slurm_cluster.py).
# Only as root with apt-get, and never fatal: without them that test skips and says why.
slurm-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
		bash scripts/slurm_cluster.sh install || echo "could not install SLURM: the real-cluster test will skip"; \
	else echo "not root or no apt-get: the real-cluster SLURM test will skip"; fi

# Test files run in TEST_WORKERS processes (pytest-xdist; a file's tests stay in one process,
# sharing its fixtures), the longest first (tests/conftest.py): the workflow and SLURM tests
# wait on subprocesses much of the time.
TEST_WORKERS ?= 2
test: setup lint slurm-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# For iteration: every test but the workflow runs (marked slow: Snakemake, the SLURM cluster).
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf results .snakemake report.html
