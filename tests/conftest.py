"""Test-session settings shared by every test module.

Airflow reads its configuration when first imported, so a private AIRFLOW_HOME
(SQLite) is set here, before any test imports it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="joinedup-test-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).parents[1] / "dags"))
os.environ.setdefault(
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
)


# The published population the dashboard tests share: the dbt build is the slow part
# (about a minute here), so it is built once per session, not once per module.
DASHBOARD_PEOPLE = 3_000
DASHBOARD_SEED = 11


@pytest.fixture(scope="session")
def published_population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory run through ingest, linkage, dbt build and publish.

    Read it, never change it: several modules use the same directory.
    """
    from ingest_fixtures import KEY, run_all

    import joinedup.linkage
    import joinedup.synth
    import joinedup.warehouse

    d = tmp_path_factory.mktemp("published-population")
    joinedup.synth.generate(d, people=DASHBOARD_PEOPLE, seed=DASHBOARD_SEED)
    run_all(d)
    joinedup.linkage.link(d, "run-1", KEY, charts=False)
    # With the run id, as the pipeline does: the published file carries its _joinedup_run stamp.
    joinedup.warehouse.build_warehouse(d, run_id="run-1")
    joinedup.warehouse.publish_analytics(d, "run-1")
    return d
