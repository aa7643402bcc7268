# One entry point for people and CI. `make test` builds the venv if needed and runs everything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8866

.PHONY: install demo test test-fast lint typecheck browser-deps bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,bench,demo]"
	touch $@

install: $(VENV)/.installed

# Serve the explorer on the bundled shapes model in Voila (http://127.0.0.1:$(PORT)).
demo: install
	$(VENV)/bin/camwidgets demo --port $(PORT)

lint: install
	$(VENV)/bin/ruff check camwidgets tests benchmarks
	$(VENV)/bin/ruff format --check camwidgets tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

# Debian's Chromium for the browser suite (Playwright never downloads a browser here).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test-fast: install
	$(PY) -m pytest -m "not notebooks and not browser" -q

test: install browser-deps lint typecheck
	$(PY) -m pytest -q --nbval-lax tests notebooks

bench: install
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_widget.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache .mypy_cache .ruff_cache
