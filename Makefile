# One entry point for people and CI. `make test` builds the venv if needed and runs everything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8866
UV_VERSION ?= 0.13.9

.PHONY: install lock demo test test-fast lint typecheck browser-deps bench clean

# A fresh install: pip brings only uv into the new venv, then uv installs the versions pinned in
# requirements.lock, in parallel (measured in the README: about 3x faster than pip resolving from
# scratch), then the project itself; anything pyproject.toml gained since the lock was written
# is still resolved and installed there. uv gets the same package sources as pip (.ci/uv_pip.py
# reads pip's configuration). Without uv on the registry, pip installs the same lock.
EXTRAS := .[test,bench,demo]
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	@if $(PY) -m pip install -q "uv==$(UV_VERSION)"; then \
		$(PYTHON) .ci/uv_pip.py $(VENV)/bin/uv install -q --python $(PY) -r requirements.lock && \
		$(PYTHON) .ci/uv_pip.py $(VENV)/bin/uv install -q --python $(PY) -e "$(EXTRAS)" ; \
	else \
		echo "uv unavailable: installing the lock with pip (slower)"; \
		$(PY) -m pip install -q -r requirements.lock && $(PY) -m pip install -q -e "$(EXTRAS)" ; \
	fi
	touch $@

install: $(VENV)/.installed

# Re-pin requirements.lock after changing the dependencies in pyproject.toml (needs `make install`).
lock: install
	$(PYTHON) .ci/uv_pip.py $(VENV)/bin/uv compile -q --universal --python-version 3.10 \
		--extra test --extra bench --extra demo --no-header -o requirements.lock pyproject.toml

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

# The developer's loop: everything but the slow cases, the notebooks and the browser suite
# (under 3 minutes on the 2-core machine when quiet). `make test` runs them all.
test-fast: install
	$(PY) -m pytest -m "not slow and not notebooks and not browser" -q

test: install browser-deps lint typecheck
	$(PY) -m pytest -q --nbval-lax tests notebooks

bench: install
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_widget.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache .mypy_cache .ruff_cache
