# ExperimentOS — `make run` starts the app, `make test` runs the whole test suite.
# Both create .venv/ and install the pinned requirements on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run api test lint bench migrate seed clean

$(VENV)/.app: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-airflow.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.app $@

migrate: $(VENV)/.app
	$(PY) -m core.cli migrate

seed: migrate
	$(PY) -m core.cli seed-demo

## run: set up, migrate, seed the demo portfolio and start the app on http://localhost:8501
run: seed
	scripts/ensure-fonts.sh
	$(VENV)/bin/streamlit run Home.py

## api: start the sidecar API on http://localhost:8000 (docs at /docs)
api: migrate
	$(VENV)/bin/uvicorn api.main:app --host 0.0.0.0 --port 8000 --timeout-keep-alive 75

## test: lint (ruff, import contracts), then the whole suite on SQLite and PostgreSQL (started if none answers) and Spark (a JRE installed if missing)
test: $(VENV)/.dev
	scripts/ensure-chromium.sh
	scripts/ensure-fonts.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	JAVA_HOME="$$(scripts/ensure-java.sh)" && export JAVA_HOME && \
	TEST_POSTGRES_URL="$$(PY=$(PY) scripts/ensure-postgres.sh)" $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# BENCH_POSTGRES=postgresql+psycopg2://postgres@127.0.0.1:5432/postgres also runs the benches
# that take --postgres on a throwaway database of that server (bench_api once per database).
bench: $(VENV)/.dev
	scripts/ensure-wrk.sh
	for script in bench/bench_*.py; do \
	  echo "== $$script at $$(date -u '+%F %H:%M:%S') UTC, load average $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	  if [ -n "$(BENCH_POSTGRES)" ] && grep -q -- '--postgres' $$script; then \
	    if [ "$$script" = bench/bench_api.py ]; then $(PY) $$script || exit 1; fi; \
	    $(PY) $$script --postgres "$(BENCH_POSTGRES)" || exit 1; \
	  else $(PY) $$script || exit 1; fi; \
	done

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .mypy_cache screenshots
