# The whole set-up on a fresh machine is `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
DATA ?= data
PEOPLE ?= 10000
# Synthetic data only: this demo key protects nothing and must never be used with real data.
DEMO_KEY := joinedup-DEMO-KEY-synthetic-data-only-do-not-use-with-real-data
SIZES ?= 10000 100000

.PHONY: run test test-fast lint format sync uv synth bench clean airflow dashboard

uv:
	@command -v uv >/dev/null 2>&1 || test -x $(HOME)/.local/bin/uv || \
	  (echo "installing uv ..." && python3 -m pip install --user --quiet uv)

# The spark extra (pyspark) is for the Spark linkage backend and its test; deploy is docker's.
sync: uv
	@$(UV) sync --locked --extra spark --quiet

run: sync
	JOINEDUP_PSEUDONYMISATION_KEY=$${JOINEDUP_PSEUDONYMISATION_KEY:-$(DEMO_KEY)} \
	  $(UV) run --locked joinedup run --data-dir $(DATA) --demo-people $(PEOPLE)

synth: sync
	$(UV) run --locked joinedup synth --people $(PEOPLE) --seed 42 --out $(DATA)

# The whole suite, every marker included: what to run before a commit is pushed.
test: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked pytest

# The edit loop, under 5 minutes on two cores: the whole suite but the tests marked (see
# pyproject.toml) browser (Playwright driving chromium: the dashboard pages, the offline
# charts), spark (Spark in local mode: a JVM per session), crash (runs killed with SIGKILL
# and run again) and slow. Without slow it took 13 minutes: `joinedup run` end to end
# (test_pipeline_run, 4 min), the GX gates' and dbt's module populations (test_quality,
# test_dbt, 3 min), the session's published population (1 min to build; every test that
# reads it: test_access, test_publish_gate, test_memory_limits, test_catalogue's run).
# tests/conftest.py refuses a test that starts a browser, or reads the published
# population, without one of these markers.
FAST_TESTS ?= not browser and not spark and not crash and not slow
test-fast: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked pytest -m "$(FAST_TESTS)" --durations=15

lint: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

format: sync
	$(UV) run --locked ruff format .
	$(UV) run --locked ruff check --fix .

bench: sync
	$(UV) run --locked python benchmarks/run.py --sizes $(SIZES)

# The commissioners' dashboard on http://localhost:$(DASHBOARD_PORT), reading $(DATA)/analytics.duckdb.
DASHBOARD_PORT ?= 8501
dashboard: sync
	$(UV) run --locked streamlit run dashboard/app.py --server.port $(DASHBOARD_PORT) \
	  --server.headless true -- --data-dir $(DATA)

# Local Airflow UI with joinedup's DAGs (SQLite, LocalExecutor). Local use only: login is off.
AIRFLOW_ENV = AIRFLOW_HOME=$(abspath $(DATA))/airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
  AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True \
  JOINEDUP_PSEUDONYMISATION_KEY=$${JOINEDUP_PSEUDONYMISATION_KEY:-$(DEMO_KEY)}
airflow: sync
	@mkdir -p $(DATA)/airflow
	@$(AIRFLOW_ENV) $(UV) run --locked airflow db migrate >/dev/null
	@$(AIRFLOW_ENV) $(UV) run --locked airflow pools set joinedup_duckdb_writer 1 "one DuckDB writer" >/dev/null
	@echo "Airflow UI: http://localhost:8080 (no login: every local user is admin)."
	@echo "Trigger joinedup_ingest_* with conf {\"data_dir\": \"$(abspath $(DATA))\"}; link_and_build follows."
	$(AIRFLOW_ENV) $(UV) run --locked airflow standalone

clean:
	rm -rf $(DATA)
