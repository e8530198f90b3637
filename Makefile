# gpusq_mm — the two commands: `make demo` and `make test`.
# GPUSQ_VENV selects the virtual environment (default: .venv here).
GPUSQ_VENV ?= $(CURDIR)/.venv
export GPUSQ_VENV
PY := $(GPUSQ_VENV)/bin/python
DEMO_DIR ?= work_dirs/demo
# tasks of `make demo`: any of cls seg det
DEMO_TASKS ?= cls seg det
DEMO_ARGS ?=
PYTEST_ARGS ?=
LINT_PATHS := gpusq_mm tools tests benchmarks configs setup.py

.PHONY: setup lint test test-fast demo clean-venv help

help:
	@echo "make setup   create/reuse $(GPUSQ_VENV) and install the pinned stack"
	@echo "make lint    setup, then ruff (ruff.toml) and isort (setup.cfg)"
	@echo "make test    setup, lint, then run the test suite"
	@echo "make demo    setup, then data -> dense -> GPUSQ (2:4, INT8 QAT, KD) -> eval -> ONNX -> report"

setup:
	@bash tools/setup_env.sh

lint: setup
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(filter-out configs,$(LINT_PATHS))

test: lint
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(PY) tools/demo.py --work-dir $(DEMO_DIR) --tasks $(DEMO_TASKS) $(DEMO_ARGS)

clean-venv:
	rm -rf $(GPUSQ_VENV)
