# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
# On the project's machines these torch/torchvision wheels come from local disk (see README).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
CORES ?= all
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo report test lint clean

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

lint: setup
	$(BIN)/snakemake --lint

test: setup lint
	$(BIN)/python -m pytest

clean:
	rm -rf results .snakemake report.html
