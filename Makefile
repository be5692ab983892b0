# The whole set-up on a fresh machine is `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
DATA ?= data
PEOPLE ?= 10000
# Synthetic data only: this demo key protects nothing and must never be used with real data.
DEMO_KEY := joinedup-DEMO-KEY-synthetic-data-only-do-not-use-with-real-data
SIZES ?= 10000 100000

.PHONY: run test test-fast lint format sync uv synth bench clean airflow dashboard spark-cluster

uv:
	@command -v uv >/dev/null 2>&1 || test -x $(HOME)/.local/bin/uv || \
	  (echo "installing uv ..." && python3 -m pip install --user --quiet uv)

# The spark extra (pyspark) is for the Spark linkage backend and its test; deploy is docker's.
sync: uv
	@# Bytecode: every joinedup run imports ~5,000 modules of Airflow, GX and dbt, and where
	@# PYTHONDONTWRITEBYTECODE is set (the project's machines) none was cached: each run
	@# compiled them again (GX's import 14 s -> 7 s; issue 23). Here, not in pyproject.toml:
	@# there every `uv run` would check all 13k files (~1 s) and say so on stderr.
	@$(UV) sync --locked --extra spark --compile-bytecode --quiet

# The demo key only when neither a key nor a key file is set (settings.py refuses both).
KEY_OR_DEMO = $${JOINEDUP_PSEUDONYMISATION_KEY:-$$([ -n "$${JOINEDUP_PSEUDONYMISATION_KEY_FILE:-}" ] || echo '$(DEMO_KEY)')}
run: sync
	JOINEDUP_PSEUDONYMISATION_KEY=$(KEY_OR_DEMO) \
	  $(UV) run --locked joinedup run --data-dir $(DATA) --demo-people $(PEOPLE)

synth: sync
	$(UV) run --locked joinedup synth --people $(PEOPLE) --seed 42 --out $(DATA)

# Both suites run in $(TEST_WORKERS) pytest-xdist processes, a whole module to a process
# (--dist loadfile: a module's fixtures are built once), since most of the suite is one
# thread of Python (dbt parses, Airflow, GX). The rules a test must keep to for that are
# in CONTRIBUTING.md; TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
# --no-loadscope-reorder: the order tests/conftest.py gives (longest kinds of module first),
# not xdist's (modules with the most tests first, which left the crash and Spark runs last).
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

# The whole suite, every marker included: what to run before a commit is pushed.
test: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked pytest $(XDIST) --durations=25

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
	$(UV) run --locked pytest $(XDIST) -m "$(FAST_TESTS)" --durations=15

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

# Local Airflow with joinedup's DAGs (SQLite, LocalExecutor, `airflow standalone`), login on:
# one user, admin, whose password Airflow generates into the file the console names. The UI
# and API listen on $(AIRFLOW_BIND) only (set AIRFLOW_BIND=0.0.0.0 to serve other machines).
# Every task reads the data directory from JOINEDUP_DATA_DIR (absolute), so the runs the
# scheduler starts from the ingest DAGs' Assets find the same data; DAGs start unpaused.
# Stopping: on Ctrl-C `airflow standalone` asks its services to stop and waits for them,
# but its scheduler waits on the LocalExecutor's idle workers, which ignore SIGINT and
# SIGTERM: it can wait for ever. So standalone runs in the background (a background job
# ignores the terminal's SIGINT) and Ctrl-C, or standalone ending, makes the recipe send
# SIGTERM to every process it started (its descendants, listed while the tree is whole)
# and, 10 s later, SIGKILL to those still there.
AIRFLOW_STOP = tree() { local c; for c in $$(ps -o pid= --ppid $$1); do echo $$c; tree $$c; done; }; \
  stop() { trap '' INT TERM; local pids; pids=$$(tree $$$$); [ -n "$$pids" ] || return 0; \
    kill -TERM $$pids 2>/dev/null; for _ in $$(seq 10); do kill -0 $$pids 2>/dev/null || return 0; sleep 1; done; \
    kill -KILL $$pids 2>/dev/null; return 0; }
AIRFLOW_BIND ?= 127.0.0.1
AIRFLOW_PORT ?= 8080
AIRFLOW_HOME_DIR = $(abspath $(DATA))/airflow
AIRFLOW_ENV = AIRFLOW_HOME=$(AIRFLOW_HOME_DIR) AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
  AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin \
  AIRFLOW__API__HOST=$(AIRFLOW_BIND) AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
  AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False JOINEDUP_DATA_DIR=$(abspath $(DATA)) \
  JOINEDUP_PSEUDONYMISATION_KEY=$(KEY_OR_DEMO)
airflow: sync
	@mkdir -p $(DATA)/airflow
	@$(AIRFLOW_ENV) $(UV) run --locked airflow db migrate >/dev/null
	@$(AIRFLOW_ENV) $(UV) run --locked airflow pools set joinedup_duckdb_writer 1 "one DuckDB writer" >/dev/null
	@echo "Airflow UI and API: http://$(AIRFLOW_BIND):$(AIRFLOW_PORT), login on."
	@echo "User admin; its password: $(AIRFLOW_HOME_DIR)/simple_auth_manager_passwords.json.generated"
	@echo "Trigger the five joinedup_ingest_* DAGs, no conf needed: every task reads JOINEDUP_DATA_DIR=$(abspath $(DATA))."
	@echo "The scheduler then runs joinedup_link_and_build, which publishes $(abspath $(DATA))/analytics.duckdb"
	@echo "and $(abspath $(DATA))/commissioning/commissioning.duckdb. Ctrl-C stops Airflow (docs/runbook.md#under-airflow-make-airflow)."
	@$(AIRFLOW_STOP); trap 'stop; exit 130' INT TERM; \
	  $(AIRFLOW_ENV) $(UV) run --locked airflow standalone & wait $$!; stop

# A standalone Spark master and worker on 127.0.0.1 from pyspark's jars, until Ctrl-C (docs/runbook.md).
SPARK_PORT ?= 7077
SPARK_UI_PORT ?= 8090
spark-cluster: sync
	$(UV) run --locked python -m joinedup.linkage.spark_cluster --port $(SPARK_PORT) \
	  --webui-port $(SPARK_UI_PORT) --cores 2 --memory 2g

clean:
	rm -rf $(DATA)
