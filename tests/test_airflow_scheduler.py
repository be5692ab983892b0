"""joinedup under a real Airflow scheduler, driven through the REST API only.

PostgreSQL as the metadata database, and the api-server, scheduler, dag-processor and
triggerer as separate processes with the LocalExecutor (docker/compose.yaml's shape,
without Docker: tests/airflow_deployment.py). The five ingest DAGs are triggered with a
token; the scheduler itself starts ``joinedup_link_and_build`` from their Assets, and it
must publish. A broken delivery must then fail its task and leave the publication alone.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from airflow_deployment import Airflow, deployment, pg_bin, wait_for

from joinedup.catalogue import COMMISSIONING, PUBLISHED, REPO_ROOT
from joinedup.ingest.load import SOURCES
from joinedup.provenance import run_record_path
from joinedup.settings import DEMO_KEY

INGEST_DAGS = [f"joinedup_ingest_{source}" for source in SOURCES]
LINK_DAG = "joinedup_link_and_build"
PEOPLE = 300
# Generous: two cores shared with other engineers' test runs.
INGEST_TIMEOUT = 240
LINK_TIMEOUT = 900

_SCHEDULER_MARKS = (
    pytest.mark.slow,
    pytest.mark.scheduler,
    pytest.mark.skipif(pg_bin() is None, reason="needs Debian's postgresql package"),
    # Each wait has its own timeout; this bounds the test if one of them hangs.
    pytest.mark.timeout(1800),
)


def scheduler(test: Callable[..., None]) -> Callable[..., None]:
    for mark in _SCHEDULER_MARKS:
        test = mark(test)
    return test


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    root = tmp_path_factory.mktemp("scheduler")
    data = root / "data"
    joinedup = Path(sys.executable).parent / "joinedup"
    subprocess.run(
        [str(joinedup), "synth", "--people", str(PEOPLE), "--seed", "19", "--out", str(data)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {"JOINEDUP_PSEUDONYMISATION_KEY": DEMO_KEY}
    with deployment(root, data, env) as af:
        af.wait_for_dags([*INGEST_DAGS, LINK_DAG], timeout=240)
        # Nobody unpauses them (the README says they appear unpaused): a paused
        # joinedup_link_and_build would let every ingest run succeed and build nothing.
        paused = {
            d: af.api("GET", f"/api/v2/dags/{d}")["is_paused"] for d in [*INGEST_DAGS, LINK_DAG]
        }
        assert not any(paused.values()), paused
        yield af


def _deliver(af: Airflow, run_id: str | None) -> tuple[dict[str, str], str]:
    """Trigger every ingest DAG, with one run id or (None) no conf at all: their final states
    by DAG, and the logs of the tasks that failed."""
    # No data_dir: where the data lives is the deployment's JOINEDUP_DATA_DIR.
    conf = {"run_id": run_id} if run_id else {}
    runs = {dag_id: af.trigger(dag_id, conf) for dag_id in INGEST_DAGS}
    states = {dag_id: af.wait_for_run(dag_id, r, INGEST_TIMEOUT) for dag_id, r in runs.items()}
    failures = "\n".join(
        af.failure_report(dag_id, runs[dag_id])
        for dag_id, state in states.items()
        if state != "success"
    )
    return states, failures


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v2/dags"),
        ("PATCH", f"/api/v2/dags/{LINK_DAG}"),
        ("POST", f"/api/v2/dags/{INGEST_DAGS[0]}/dagRuns"),
    ],
)
@scheduler
def test_unauthenticated_requests_are_refused(airflow: Airflow, method: str, path: str) -> None:
    body = {"is_paused": False} if method == "PATCH" else {"logical_date": None, "conf": {}}
    status, _payload = airflow.request(method, path, None if method == "GET" else body, auth=False)
    assert status == 401
    # ... and the same request with the admin's token is not.
    status, _payload = airflow.request("GET", "/api/v2/dags", auth=True)
    assert status == 200


@scheduler
def test_ingest_runs_start_link_and_build_which_publishes(airflow: Airflow) -> None:
    published = PUBLISHED.under(airflow.data_dir)
    assert not published.exists()
    # As the README says to: no conf.
    states, failures = _deliver(airflow, None)
    assert states == dict.fromkeys(INGEST_DAGS, "success"), failures

    # Nobody triggers it: the scheduler starts it once every source's Asset is updated.
    link_run = wait_for(
        f"the scheduler to start {LINK_DAG} from the ingest Assets",
        lambda: airflow.dag_runs(LINK_DAG),
        timeout=120,
    )
    assert len(link_run) == 1
    assert link_run[0]["run_type"] == "asset_triggered"
    state = airflow.wait_for_run(LINK_DAG, link_run[0]["dag_run_id"], LINK_TIMEOUT)
    tasks = airflow.task_states(LINK_DAG, link_run[0]["dag_run_id"])
    assert state == "success", airflow.failure_report(LINK_DAG, link_run[0]["dag_run_id"])
    assert set(tasks.values()) == {"success"}, tasks
    assert published.is_file()
    assert COMMISSIONING.under(airflow.data_dir).is_file()  # the dashboard's publication
    # The ingest runs each had Airflow's own id: the build worked under its own, and
    # recorded it.
    assert run_record_path(airflow.data_dir, link_run[0]["dag_run_id"]).is_file()


@scheduler
def test_a_broken_delivery_fails_its_task_and_leaves_the_publication(airflow: Airflow) -> None:
    published = PUBLISHED.under(airflow.data_dir)
    assert published.is_file(), "needs the publication of the previous test"
    before = (_sha256(published), published.stat().st_mtime_ns)
    link_runs_before = len(airflow.dag_runs(LINK_DAG))

    # A GP patients file without its NHS number column: rejected whole (docs/contracts.md).
    patients = airflow.data_dir / "landing" / "gp" / "patients.csv"
    rows = [line.split(",") for line in patients.read_text().splitlines()]
    drop = rows[0].index("nhs_number")
    patients.write_text("\n".join(",".join(r[:drop] + r[drop + 1 :]) for r in rows) + "\n")

    states, failures = _deliver(airflow, "delivery-2")
    assert states.pop("joinedup_ingest_gp") == "failed", states
    assert set(states.values()) == {"success"}, failures
    assert "nhs_number" in failures  # the task log names what is wrong
    gp_run = airflow.dag_runs("joinedup_ingest_gp")[-1]
    assert airflow.task_states("joinedup_ingest_gp", gp_run["dag_run_id"]) == {"ingest": "failed"}

    # Not every source delivered: the scheduler must not start link_and_build. Given time
    # to (its heartbeat is 2 s here), it has not.
    time.sleep(20)
    assert len(airflow.dag_runs(LINK_DAG)) == link_runs_before
    assert (_sha256(published), published.stat().st_mtime_ns) == before


def test_make_airflow_turns_login_on_and_listens_on_loopback_only() -> None:
    dry = subprocess.run(
        ["make", "-n", "airflow"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "SIMPLE_AUTH_MANAGER_ALL_ADMINS=True" not in dry
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin" in dry
    assert "AIRFLOW__API__HOST=127.0.0.1" in dry
    assert "simple_auth_manager_passwords.json.generated" in dry
    assert "JOINEDUP_DATA_DIR=/" in dry  # absolute, so asset-triggered runs find the data
