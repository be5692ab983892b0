"""DAG runs (``dag.test()``, the test session's SQLite Airflow) given a bad data directory or
model: the first task fails with the reason and nothing else runs or is written.

And the other half: an ingest run given no conf at all works in JOINEDUP_DATA_DIR and tells
the Asset it updates where, so the link-and-build run it starts works there too.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest

from joinedup.catalogue import DAGS_DIR
from joinedup.settings import DEMO_KEY
from joinedup.synth import generate

# Each dag.test() writes the DAG folder to the DB and runs tasks: minutes, not seconds.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dags():
    """The DAGs with no retries (a failed first task ends the run at once), on a migrated DB."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool
    from airflow.utils.db import upgradedb

    import joinedup.orchestration
    from joinedup.orchestration import DUCKDB_POOL

    upgradedb()
    Pool.create_or_update_pool(DUCKDB_POOL, slots=1, description="test", include_deferred=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JOINEDUP_TASK_RETRIES", "0")
        importlib.reload(joinedup.orchestration)
        try:
            bag = DagBag(str(DAGS_DIR))
        finally:
            mp.undo()
            importlib.reload(joinedup.orchestration)
    assert bag.import_errors == {}
    return bag.dags


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small landing delivery in JOINEDUP_DATA_DIR, the key set, no .env in the cwd."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    d = tmp_path / "data"
    generate(d, people=200, seed=3, months=1)
    monkeypatch.setenv("JOINEDUP_DATA_DIR", str(d))
    return d


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _refused_at_resolve_run(
    dags, conf: dict[str, str], data: Path, message: str, capfd: pytest.CaptureFixture
) -> None:
    before = _tree(data)
    capfd.readouterr()
    dag_run = dags["joinedup_link_and_build"].test(run_conf=conf)
    states = _states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states.pop("resolve_run") == "failed"
    assert set(states.values()) == {"upstream_failed"}, states
    # dag.test() runs the task in this process: its log is this process's output.
    output = capfd.readouterr()
    assert message in output.out + output.err
    assert _tree(data) == before, "nothing may be read into or written to the data directory"


def test_a_trained_model_outside_linked_is_refused_before_any_work(
    dags, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    elsewhere = tmp_path / "model.json"
    elsewhere.write_text(json.dumps({"comparisons": []}))
    conf = {"trained_model": str(elsewhere), "run_id": "bad-model"}
    _refused_at_resolve_run(dags, conf, data, f"trained model '{elsewhere}' is not in", capfd)


def test_an_unrecorded_model_in_linked_is_refused_before_any_work(
    dags, data: Path, capfd: pytest.CaptureFixture
) -> None:
    crafted = data / "linked" / "model.json"
    crafted.parent.mkdir()
    crafted.write_text(json.dumps({"comparisons": []}))
    conf = {"trained_model": str(crafted), "run_id": "crafted-model"}
    _refused_at_resolve_run(dags, conf, data, "is in no run record under", capfd)


def test_a_data_dir_outside_the_setting_is_refused_before_any_work(
    dags, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    other = tmp_path / "other"
    generate(other, people=200, seed=4, months=1)
    before = _tree(other)
    conf = {"data_dir": str(other), "run_id": "outside"}
    _refused_at_resolve_run(dags, conf, data, "lies outside JOINEDUP_DATA_DIR", capfd)
    assert _tree(other) == before


def test_no_setting_fails_the_first_task_not_a_guess_at_data(
    dags, data: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("JOINEDUP_DATA_DIR")
    monkeypatch.chdir(data.parent)  # ./data exists here: a relative default would use it
    _refused_at_resolve_run(dags, {"run_id": "unset"}, data, "JOINEDUP_DATA_DIR is not set", capfd)


def test_an_ingest_run_with_no_conf_works_in_the_setting_and_tells_its_asset(
    dags, data: Path
) -> None:
    """What makes an asset-triggered link-and-build run agree with its ingest runs."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from joinedup.orchestration import source_asset_uri

    dag_run = dags["joinedup_ingest_gp"].test()
    assert str(dag_run.state) == "success", _states(dag_run)
    ledger = (data / "ledger.csv").read_text()
    assert dag_run.run_id in ledger and "gp/patients" in ledger.replace(",", "/")
    with create_session() as session:
        extra = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == source_asset_uri("gp"))
            .where(AssetEvent.source_run_id == dag_run.run_id)
        ).one()
    assert extra == {"run_id": dag_run.run_id, "data_dir": str(data.resolve())}


def test_dags_appear_unpaused_though_airflow_pauses_new_dags_by_default(dags, data: Path) -> None:
    from airflow.configuration import conf
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    assert conf.getboolean("core", "dags_are_paused_at_creation") is True
    assert "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION" not in os.environ
    dags["joinedup_ingest_reference"].test()  # writes every DAG of the folder to the DB
    with create_session() as session:
        paused = dict(
            session.execute(
                select(DagModel.dag_id, DagModel.is_paused).where(DagModel.dag_id.in_(list(dags)))
            ).all()
        )
    assert paused == {dag_id: False for dag_id in dags}
