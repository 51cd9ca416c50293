# simlab: `make run` and `make test` are the whole quickstart. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
TORCH_VERSION ?= 2.13.0
# llama-cpp-python compiles from source on first install (about 6-12 min on 2 cores);
# pip caches the wheel, so later installs take seconds.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: install browser run test test-fast lint bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch for the transformers backend's tests (a bare `torch` would be a CUDA build)
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,transformers,ray,ui]'
	touch $@

install: $(BIN)/.installed

## Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser).
## Needs root to install; without it the browser tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  >/dev/null; } || echo "make browser: chromium not installed (needs root); browser tests will skip"

## Run the default experiment (3 persona dialogues on the embedded model); ARGS= for overrides.
run: install
	$(BIN)/simlab $(ARGS)

## The whole test suite, embedded-model and server tests included (this is what CI runs).
test: install browser
	$(BIN)/python -m pytest

## Offline unit tests only (no embedded model).
test-fast: install
	$(BIN)/python -m pytest -m "not embedded"

lint: install
	$(BIN)/ruff check simlab scenarios tests benchmarks

bench: install
	$(BIN)/python benchmarks/bench_dialogue.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
