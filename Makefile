# gpusq_mm — the two commands: `make demo` and `make test`.
# GPUSQ_VENV selects the virtual environment (default: .venv here).
GPUSQ_VENV ?= $(CURDIR)/.venv
export GPUSQ_VENV
PY := $(GPUSQ_VENV)/bin/python
DEMO_DIR ?= work_dirs/demo
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo clean-venv help

help:
	@echo "make setup   create/reuse $(GPUSQ_VENV) and install the pinned stack"
	@echo "make test    setup, then run the test suite"
	@echo "make demo    setup, then run the smallest end-to-end GPUSQ flow"

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(PY) tools/demo.py --work-dir $(DEMO_DIR)

clean-venv:
	rm -rf $(GPUSQ_VENV)
