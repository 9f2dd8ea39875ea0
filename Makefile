# Pollcheck: `make run` to try it, `make test` to prove it. Only Python 3.11+ and make needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)
export POLLCHECK_TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: install run test test-deep test-sqlite test-postgres lint format bench lock clean

$(STAMP):
	@$(PY) -c 'import sys; sys.exit("Pollcheck needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	@# setuptools warns on every editable install that the folder shadows the package: it is meant to.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/pollcheck migrate
	$(BIN)/pollcheck demo
	@echo ""
	@echo "  Pollcheck runs at http://127.0.0.1:$${POLLCHECK_PORT:-8000}"
	@echo "  API docs:        http://127.0.0.1:$${POLLCHECK_PORT:-8000}/docs"
	@echo "  Observer app:    http://127.0.0.1:$${POLLCHECK_PORT:-8000}/app"
	@echo "  Demo tokens are printed above (and kept in var/demo-credentials.txt)."
	@echo ""
	$(BIN)/pollcheck serve

# The suite runs twice: on SQLite (the embedded default) and on PostgreSQL (production), at
# the same time, since much of each pass waits on servers, browsers and sleeps (both in
# 8 min 50 s on 2 cores that other test runs shared); the PostgreSQL pass's output is
# printed after the SQLite one's. Without a PostgreSQL the second pass is skipped and says so, unless
# POLLCHECK_REQUIRE_PG=1 (set by .ci/run), where a missing PostgreSQL fails the run.
test: install
	@mkdir -p var
	@if $(BIN)/python -m tests.pg_available; then \
		$(MAKE) --no-print-directory test-postgres > var/test-postgres.log 2>&1 & pg=$$!; \
		$(MAKE) --no-print-directory test-sqlite; lite=$$?; \
		wait $$pg; pgrc=$$?; echo ""; cat var/test-postgres.log; \
		[ $$lite -eq 0 ] && [ $$pgrc -eq 0 ]; \
	elif [ "$${POLLCHECK_REQUIRE_PG:-0}" = "1" ]; then \
		echo "FAIL: no PostgreSQL answers at $$POLLCHECK_TEST_PG_URL and POLLCHECK_REQUIRE_PG=1"; exit 1; \
	else \
		$(MAKE) --no-print-directory test-sqlite || exit 1; \
		echo ""; echo "SKIPPED: the PostgreSQL pass (no server at $$POLLCHECK_TEST_PG_URL)."; \
		echo "         Only SQLite was tested. Start PostgreSQL or set POLLCHECK_TEST_PG_URL."; \
	fi

# The findings against their plain reference on long random missions (thousands of
# events), on both databases; `make test` runs a short one.
DEEP_ENV := POLLCHECK_REFERENCE_MISSIONS=4 POLLCHECK_REFERENCE_EVENTS=500 POLLCHECK_REFERENCE_CHECK_EVERY=50
test-deep: install
	$(DEEP_ENV) $(MAKE) --no-print-directory test-sqlite PYTEST_ARGS=tests/services/test_findings_reference.py
	$(DEEP_ENV) $(MAKE) --no-print-directory test-postgres PYTEST_ARGS=tests/services/test_findings_reference.py

test-sqlite: install
	@echo "== tests on SQLite =="
	POLLCHECK_TEST_DB=sqlite $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-postgres: install
	@echo "== tests on PostgreSQL ($$POLLCHECK_TEST_PG_URL) =="
	POLLCHECK_TEST_DB=postgresql $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# `make test` does not run lint first, so a developer can rerun tests on code mid-edit; CI
# (.ci/run) runs `make lint` before `make test`, so nothing reaches main without both.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy api models

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.exports
	$(BIN)/python -m bench.hardening
	$(BIN)/python -m bench.consoles
	$(BIN)/python -m bench.openrosa
	$(BIN)/python -m bench.sms
	$(BIN)/python -m bench.replica

# Two locks from pyproject.toml: requirements.lock holds what the server runs (the Docker
# image installs only it); requirements-dev.lock adds the test and lint tools (`make install`).
lock:
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile -q pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements-dev.lock

clean:
	rm -rf $(VENV) pollcheck.db pollcheck.db-* var .pytest_cache .mypy_cache .ruff_cache
