# returns-sorter: every target does its own set-up on a fresh Debian machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: demo test lint typecheck unit bench soak system-deps venv tools clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The real MFRC522 library for the register-level emulator; its spidev / RPi.GPIO
	# dependencies are Pi-only (the simulator fakes them), hence --no-deps off the Pi.
	$(BIN)/pip install --quiet --no-deps 'mfrc522==0.0.7'
	touch $@

venv: system-deps $(BIN)/.installed

## The contract checkers that are not Python: @asyncapi/parser, pinned by
## tools/asyncapi/package-lock.json (npm ci, no install scripts). Without node the
## AsyncAPI test skips and says so.
ASYNCAPI_TOOL := tools/asyncapi/node_modules/.package-lock.json
$(ASYNCAPI_TOOL): tools/asyncapi/package.json tools/asyncapi/package-lock.json
	npm ci --prefix tools/asyncapi --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

tools:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(ASYNCAPI_TOOL); \
	else echo "tools: node/npm absent, the AsyncAPI parser test will skip"; fi

system-deps:
	@bash scripts/ensure-system-deps.sh

## The simulated station end to end: broker, gateway, station, simulator, status page.
demo: venv
	$(BIN)/returns-sim demo $(ARGS)

## Lint, type-check and run the whole test suite (broker and end-to-end tests included).
test: venv tools lint typecheck
	$(BIN)/pytest $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m benchmarks $(ARGS)

## Load-sensitive acceptance runs left out of `make test` (tests marked soak: test_timing.py).
soak: venv
	$(BIN)/pytest -m soak $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
