# One entry point for people and CI. `make test` builds the venv if needed and runs everything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8866
UV_VERSION ?= 0.13.9

.PHONY: install lock demo test test-fast lint typecheck browser-deps bench docs docs-build clean

# A fresh install: pip brings only uv into the new venv, then uv installs the versions pinned in
# requirements.lock, in parallel (measured in docs/how-to/install.md: about 3x faster than pip resolving from
# scratch), then the project itself; anything pyproject.toml gained since the lock was written
# is still resolved and installed there. uv gets the same package sources as pip (.ci/uv_pip.py
# reads pip's configuration). Without uv on the registry, pip installs the same lock.
EXTRAS := .[test,bench,demo,docs]
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
		--extra test --extra bench --extra demo --extra docs --no-header -o requirements.lock pyproject.toml

# Serve the explorer on the bundled shapes model in Voila (http://127.0.0.1:$(PORT)).
demo: install
	$(VENV)/bin/camwidgets demo --port $(PORT)

lint: install
	$(VENV)/bin/ruff check camwidgets tests benchmarks docs/conf.py docs/_ext
	$(VENV)/bin/ruff format --check camwidgets tests benchmarks docs/conf.py docs/_ext

typecheck: install
	$(VENV)/bin/mypy

# Debian's Chromium for the browser suite (Playwright never downloads a browser here).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# The developer's loop: everything but the slow cases, the notebooks and the browser suite
# (under 3 minutes on the 2-core machine when quiet). `make test` runs them all.
test-fast: install
	$(PY) -m pytest -m "not slow and not notebooks and not browser" -q

test: install browser-deps lint typecheck docs
	$(PY) -m pytest -q --nbval-lax tests notebooks

# The documentation site, warnings as errors (nitpicky: every cross-reference must resolve):
# docs/_build/html/index.html. The tutorials are the notebooks, executed for the site through a
# jupyter-cache in docs/_build/.jupyter_cache, so a rebuild re-runs only notebooks whose code
# changed; a notebook that raises fails the build. `make docs-build` skips the install step.
DOCS_JOBS ?= auto
docs: install
	$(MAKE) --no-print-directory docs-build

docs-build:
	$(VENV)/bin/sphinx-build -W --keep-going -n -j $(DOCS_JOBS) -q -b html docs docs/_build/html

bench: install
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_widget.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache .mypy_cache .ruff_cache docs/_build docs/jupyter_execute docs/tutorials/notebooks
