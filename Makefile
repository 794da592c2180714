# SpineGrade: two commands for users (`make demo`, `make test`); both set up .venv when missing.
PYTHON ?= python3
VENV ?= .venv
DEMO_OUT ?= demo-output
# CPU build of PyTorch; an unpinned torch pulls several GB of CUDA packages.
TORCH_PIN ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test setup setup-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

demo: setup
	$(BIN)/spinegrade demo --out $(DEMO_OUT)

test: setup-test
	$(BIN)/python -m pytest -q

bench: setup-test
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
