"""Every DAG imports cleanly and carries what operators rely on (Astronomer template style)."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).parents[2] / "dags"


# Tasks that must fail at once, never retry: a failed gate, a leak or an unbalanced ledger
# is not transient. Every other task retries, as DEFAULT_ARGS says, when a scheduler runs it.
NEVER_RETRIED = {
    "joinedup_link_and_build": {
        "quality_gate_landing",
        "quality_gates_inputs",
        "quality_gates_marts",
        "privacy_gate",
        "privacy_report",
        "finalise",
    }
}
SCHEDULED_RETRIES = 2  # DEFAULT_ARGS without JOINEDUP_TASK_RETRIES (what `make airflow` runs)


def load_dags(folder: Path, task_retries: str | None = None):
    """The DagBag of ``folder``, its default retries read with JOINEDUP_TASK_RETRIES as given.

    DEFAULT_ARGS is read from the environment when joinedup.orchestration is imported, and
    `joinedup run` (run by other tests in this process) sets JOINEDUP_TASK_RETRIES=0: the
    module is re-imported under the environment asked for, then under the caller's again.
    """
    from airflow.dag_processing.dagbag import DagBag

    import joinedup.orchestration

    with pytest.MonkeyPatch.context() as mp:
        if task_retries is None:
            mp.delenv("JOINEDUP_TASK_RETRIES", raising=False)
        else:
            mp.setenv("JOINEDUP_TASK_RETRIES", task_retries)
        importlib.reload(joinedup.orchestration)
        try:
            return DagBag(str(folder))
        finally:
            mp.undo()
            importlib.reload(joinedup.orchestration)


def retry_problems(bag, scheduled: int) -> list[str]:
    """Each task whose retries are not those intended: 0 for NEVER_RETRIED, else ``scheduled``."""
    problems = []
    assert bag.dags, "no DAGs loaded"
    for dag in bag.dags.values():
        assert dag.tasks, dag.dag_id
        for t in dag.tasks:
            intended = 0 if t.task_id in NEVER_RETRIED.get(dag.dag_id, ()) else scheduled
            if t.retries != intended:
                problems.append(f"{dag.dag_id}.{t.task_id}: retries={t.retries}, not {intended}")
    return problems


@pytest.fixture(scope="module")
def dagbag():
    return load_dags(DAGS_FOLDER)


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


def test_tasks_have_an_owner(dagbag) -> None:
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            assert t.owner not in (None, "", "airflow"), (dag.dag_id, t.task_id)


def test_scheduled_tasks_retry_and_the_gates_never_do(dagbag) -> None:
    assert set(NEVER_RETRIED) <= set(dagbag.dag_ids)
    for dag_id, task_ids in NEVER_RETRIED.items():
        assert task_ids <= set(dagbag.dags[dag_id].task_ids), dag_id
    assert retry_problems(dagbag, SCHEDULED_RETRIES) == []


def test_joinedup_run_fails_fast_with_no_retries_at_all() -> None:
    # airflow_runner.airflow_env sets JOINEDUP_TASK_RETRIES=0 for `joinedup run`.
    bag = load_dags(DAGS_FOLDER, task_retries="0")
    assert retry_problems(bag, 0) == []


def test_the_retries_check_finds_a_gate_that_would_retry(tmp_path: Path) -> None:
    """The check can fail: a copy of the DAGs whose privacy gate lost its retries=0."""
    shutil.copytree(DAGS_FOLDER, tmp_path / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    dag_file = tmp_path / "dags" / "joinedup_link_and_build.py"
    text = dag_file.read_text()
    gate = "@task(retries=0, execution_timeout=timedelta(hours=1))\n    def privacy_gate("
    assert text.count(gate) == 1
    dag_file.write_text(text.replace(gate, gate.replace("retries=0, ", "")))
    bag = load_dags(tmp_path / "dags")
    assert bag.import_errors == {}
    assert retry_problems(bag, SCHEDULED_RETRIES) == [
        f"joinedup_link_and_build.privacy_gate: retries={SCHEDULED_RETRIES}, not 0"
    ]


def test_dags_are_documented_tagged_and_take_a_data_dir(dagbag) -> None:
    for dag in dagbag.dags.values():
        assert dag.doc_md and "When it fails" in dag.doc_md, dag.dag_id
        assert "joinedup" in dag.tags
        assert "data_dir" in dag.params
        assert dag.max_active_runs == 1
        # Run only when triggered or by their Assets: paused, they would wait unnoticed.
        assert dag.is_paused_upon_creation is False, dag.dag_id
        assert "Not paused at creation" in dag.doc_md and "JOINEDUP_DATA_DIR" in dag.doc_md
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
