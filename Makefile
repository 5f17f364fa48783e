# Two commands: `make demo` runs the backfill demo, `make test` runs the tests.
# Both create (or reuse) the virtualenv .venv, installing the package with pinned constraints.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYVER = $(shell $(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
CONSTRAINTS = constraints/python$(PYVER).txt
STAMP := $(VENV)/.installed

.PHONY: demo test browser lint bench venv clean constraints

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml $(wildcard constraints/*.txt)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "airflow-spreader needs Python >= 3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(if $(wildcard $(CONSTRAINTS)),-c $(CONSTRAINTS),) -e '.[test]'
	touch $(STAMP)

demo: venv
	$(BIN)/python -m devtools.demo

test: venv browser
	$(BIN)/python -m ruff check airflow_spreader devtools tests dags bench
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The Backfills page test drives a headless Chromium: Debian's (`apt-get install chromium`, as .ci/run does)
# or, where none is on the PATH, Playwright's own download.
browser: venv
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  $(BIN)/python -m playwright install $$( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && echo --with-deps ) chromium

lint: venv
	$(BIN)/python -m ruff check airflow_spreader devtools tests dags bench
	$(BIN)/python -m mypy

# Benchmarks (issue 7): ~14 min on 2 cores, writes bench/RESULTS.md; see bench/README.md.
bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .demo build *.egg-info

# Re-pin after changing dependencies: freezes the tested set for this Python version.
constraints: venv
	{ echo "# Resolved and tested with apache-airflow 3.3.2 on CPython $(PYVER) (pip freeze of make venv)."; \
	  echo "# Regenerate: make constraints"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^airflow-spreader'; } > $(CONSTRAINTS)
