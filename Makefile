# returns-sorter: every target does its own set-up on a fresh Debian machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: demo test lint typecheck unit bench system-deps venv clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The real MFRC522 library for the register-level emulator; its spidev / RPi.GPIO
	# dependencies are Pi-only (the simulator fakes them), hence --no-deps off the Pi.
	$(BIN)/pip install --quiet --no-deps 'mfrc522==0.0.7'
	touch $@

venv: system-deps $(BIN)/.installed

system-deps:
	@bash scripts/ensure-system-deps.sh

## The simulated station end to end: broker, gateway, station, simulator, status page.
demo: venv
	$(BIN)/returns-sim demo $(ARGS)

## Lint, type-check and run the whole test suite (broker and end-to-end tests included).
test: venv lint typecheck
	$(BIN)/pytest $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
