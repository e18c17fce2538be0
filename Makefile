# returns-sorter: every target does its own set-up on a fresh Debian machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: demo test lint typecheck security audit bandit lock unit bench soak system-deps venv tools clean

LOCK := requirements/lock.txt
COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

# Reproducible install: every file pinned with its SHA-256 (requirements/README.md).
$(BIN)/.installed: pyproject.toml $(LOCK) requirements/no-deps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	# The real MFRC522 library for the register-level emulator; its spidev / RPi.GPIO
	# dependencies are Pi-only (the simulator fakes them), hence --no-deps off the Pi.
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --require-hashes \
		-r requirements/no-deps.txt
	touch $@

## Regenerate the hashed lock files from pyproject.toml (UPGRADE=1 moves every pin).
lock:  # needs uv: make venv first (the lock files are committed)
	$(COMPILE) pyproject.toml requirements/build.in --extra dev --extra pi -o $(LOCK)
	$(COMPILE) pyproject.toml requirements/build.in --extra edge --extra camera --extra pi \
		-c $(LOCK) -o requirements/station.txt
	$(COMPILE) requirements/no-deps.in --no-deps -o requirements/no-deps.txt
	$(COMPILE) requirements/pi5.in --no-deps -o requirements/pi5.txt

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

## Lint, type-check, check the supply chain and run the whole test suite (broker and
## end-to-end tests included) in two parts: the tests that keep no real-time belt in
## TEST_JOBS worker processes (pytest-xdist), then the real-time ones (markers e2e,
## browser, realtime) one at a time, so a loaded machine cannot move their reads and gates.
## Both parts always run; a part that ARGS leaves without tests (pytest's exit status 5)
## is not a failure.
TEST_JOBS ?= 2
SERIAL := e2e or browser or realtime
test: venv tools lint typecheck security
	@status=0; \
	$(BIN)/pytest -n $(TEST_JOBS) -m 'not soak and not ($(SERIAL))' $(ARGS) \
	  || { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	$(BIN)/pytest -m 'not soak and ($(SERIAL))' $(ARGS) \
	  || { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	exit $$status

## Supply chain: known vulnerabilities of the pinned releases, and bandit on our code.
security: audit bandit

audit: venv
	$(BIN)/python scripts/audit.py $(LOCK)

bandit: venv
	$(BIN)/bandit -c pyproject.toml -q -r protocol edge gateway simulator

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m benchmarks $(ARGS)

## Runs left out of `make test` (tests marked soak): the load-sensitive timing acceptance
## (test_timing.py) and the outages scenario (its parts have faster tests in `make test`).
soak: venv
	$(BIN)/pytest -m soak $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
