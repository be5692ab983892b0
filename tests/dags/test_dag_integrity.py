"""Every DAG imports cleanly and carries what operators rely on (Astronomer template style)."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS_FOLDER))


def test_every_dag_file_imports(dagbag) -> None:
    assert dagbag.import_errors == {}
    files = {Path(p).name for p in DAGS_FOLDER.glob("*.py")}
    assert files == {"joinedup_ingest.py", "joinedup_link_and_build.py"}


def test_one_ingest_dag_per_source_and_a_link_dag_on_their_assets(dagbag) -> None:
    from joinedup.ingest.load import SOURCES
    from joinedup.orchestration import source_asset_uri

    ids = set(dagbag.dag_ids)
    assert {f"joinedup_ingest_{s}" for s in SOURCES} | {"joinedup_link_and_build"} == ids
    link = dagbag.dags["joinedup_link_and_build"]
    assert type(link.timetable).__name__ == "AssetTriggeredTimetable"
    condition = link.timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"  # every source, not any one of them
    scheduled_on = {a.uri for a in condition.objects}
    produced = set()
    for source in SOURCES:
        dag = dagbag.dags[f"joinedup_ingest_{source}"]
        for t in dag.tasks:
            produced |= {o.uri for o in t.outlets}
    assert produced == {source_asset_uri(s) for s in SOURCES}
    assert scheduled_on == produced


@pytest.mark.parametrize("attribute", ["owner", "retries"])
def test_tasks_have_owner_and_retries(dagbag, attribute: str) -> None:
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            value = getattr(t, attribute)
            assert value not in (None, "", "airflow"), (dag.dag_id, t.task_id, attribute)


def test_dags_are_documented_tagged_and_take_a_data_dir(dagbag) -> None:
    for dag in dagbag.dags.values():
        assert dag.doc_md and "When it fails" in dag.doc_md, dag.dag_id
        assert "joinedup" in dag.tags
        assert "data_dir" in dag.params
        assert dag.max_active_runs == 1
        for t in dag.tasks:
            assert t.execution_timeout is not None, (dag.dag_id, t.task_id)


def test_the_privacy_report_gates_publish(dagbag) -> None:
    """The report measures the staged candidate; publish waits for it, docs for publish."""
    dag = dagbag.dags["joinedup_link_and_build"]

    def upstream(task_id: str) -> set[str]:
        return dag.get_task(task_id).upstream_task_ids

    assert "privacy_gate" in upstream("stage_analytics")
    assert "stage_analytics" in upstream("privacy_report")
    assert upstream("publish") == {"resolve_run", "privacy_report"}
    assert "publish" in upstream("docs")
    assert {"publish", "docs", "privacy_report"} <= upstream("finalise")
    # Nothing reaches publish but through the report: every gate lies upstream of it.
    before_publish = {t.task_id for t in dag.get_task("publish").get_flat_relatives(upstream=True)}
    gates = {"quality_gate_landing", "quality_gates_inputs", "quality_gates_marts"}
    assert gates | {"privacy_gate", "stage_analytics", "privacy_report"} <= before_publish
    assert "docs" not in before_publish
