"""`joinedup run` migrates Airflow's metadata database only when it may be behind.

Each step runs in its own interpreter, as each `joinedup run` does: Airflow binds its
database when first imported. Real Airflow, real SQLite files, no mocks.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from joinedup.airflow_runner import MIGRATED

pytestmark = pytest.mark.slow

_MIGRATE = """
import os, sys
from pathlib import Path
from joinedup.airflow_runner import airflow_env, _migrate
env = airflow_env(Path(sys.argv[1]))
os.environ.update(env)
_migrate(env, Path(sys.argv[1]) / "migrate.log")
"""


def _migrate(data_dir: Path) -> None:
    subprocess.run([sys.executable, "-c", _MIGRATE, str(data_dir)], check=True, timeout=600)


def _revision(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "airflow" / "airflow.db") as con:
        return sorted(r[0] for r in con.execute("SELECT version_num FROM alembic_version"))


def test_the_migration_is_skipped_only_while_packages_and_revision_match(tmp_path: Path) -> None:
    record = tmp_path / "airflow" / MIGRATED
    _migrate(tmp_path)
    written = json.loads(record.read_text())
    assert written["revisions"] == _revision(tmp_path)
    assert ["apache-airflow-core", version("apache-airflow-core")] in written["packages"]

    # Unchanged: the record is left as it is (a migration rewrites it).
    before = record.stat().st_mtime_ns, record.stat().st_ino
    _migrate(tmp_path)
    assert (record.stat().st_mtime_ns, record.stat().st_ino) == before

    # Other Airflow packages than the ones that migrated: migrate, and record the real ones.
    stale = dict(written, packages=[["apache-airflow-core", "0.0.0"]])
    record.write_text(json.dumps(stale))
    _migrate(tmp_path)
    assert json.loads(record.read_text()) == written

    # A database that is not at the recorded revision (here: none at all) is migrated.
    (tmp_path / "airflow" / "airflow.db").unlink()
    _migrate(tmp_path)
    assert _revision(tmp_path) == written["revisions"]
    tables = sqlite3.connect(tmp_path / "airflow" / "airflow.db").execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'dag_run'"
    )
    assert tables.fetchone() == (1,)
