# Entry points for a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
ENV := scripts/in_env.sh
PYTEST_ARGS ?=

.PHONY: setup build test lint demo live clean

setup build:
	@bash scripts/setup.sh

test: setup
	$(ENV) python -m pytest $(PYTEST_ARGS)

lint: setup
	$(ENV) python -m pytest -m lint $(PYTEST_ARGS)

clean:
	rm -rf build install log demo_output
