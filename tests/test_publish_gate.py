"""Two-phase publish: the privacy report measures the staged candidate before it is published.

The DAG runs ``stage_analytics`` -> ``privacy_report`` -> ``publish``
(tests/dags/test_dag_integrity.py checks that order); these tests call the same
``joinedup.pipeline`` stage functions in that order on a copy of the session's published
population (real dbt warehouse, real DuckDB files, the real report), with the previous
run's ``analytics.duckdb`` in place:

* a report set to fail (``JOINEDUP_PRIVACY_ON_LOW_K=fail``: the population has people
  with k < 5 on their demographics) leaves the published file byte-identical, removes the
  candidate, and publish then refuses;
* a passing report is followed by a publish of exactly the bytes it measured, with the
  content ``publish_analytics`` gives;
* a candidate that is not the file the report measured, or that another run staged, is
  refused;
* a run killed between stage and publish leaves the published file alone and the
  candidate owner-only, which stale-temporary cleanup keeps and the next run replaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from joinedup import catalogue, pipeline, warehouse
from joinedup.atomic import remove_stale_temporaries
from joinedup.privacy.report import PrivacyRiskError
from joinedup.provenance import read_stamp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the dashboard package

from dashboard import data as dashboard_data

# Every test works on a copy of the session's published population (a minute to build).
pytestmark = pytest.mark.slow

COMMISSIONING = catalogue.COMMISSIONING.path
PREVIOUS_RUN = "run-1"  # the run that published the session population's analytics.duckdb


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def population(published_population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the published population (the session's is shared, read-only)."""
    for name in ("PUBLISHED_DIR", "PRIVACY_ON_LOW_K", "PRIVACY_ON_RECOVERABLE"):
        monkeypatch.delenv(f"JOINEDUP_{name}", raising=False)
    data_dir = tmp_path / "data"
    shutil.copytree(published_population, data_dir, symlinks=True)
    return data_dir


def _tables(path: Path) -> dict[str, tuple]:
    """Every table's rows, its description and its columns' descriptions (stamp aside)."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute(
            "select table_name, comment from duckdb_tables() "
            "where table_name <> '_joinedup_run' order by table_name"
        ).fetchall()
        out = {}
        for name, comment in names:
            columns = con.execute(
                "select column_name, data_type, comment from duckdb_columns() "
                "where table_name = ? order by column_index",
                [name],
            ).fetchall()
            rows = con.execute(f'select * from "{name}" order by all').fetchall()
            out[name] = (comment, columns, rows)
    return out


def test_a_failing_report_publishes_nothing(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Analysts' folder of its own (JOINEDUP_PUBLISHED_DIR), holding the last good file.
    folder = tmp_path / "published"
    folder.mkdir()
    shutil.copy2(population / "analytics.duckdb", folder / "analytics.duckdb")
    (folder / "commissioning").mkdir()
    shutil.copy2(population / COMMISSIONING, folder / COMMISSIONING)
    monkeypatch.setenv("JOINEDUP_PUBLISHED_DIR", str(folder))
    published = folder / "analytics.duckdb"
    before = (published.read_bytes(), _mode(published), published.stat().st_mtime_ns)
    commissioning_before = (folder / COMMISSIONING).read_bytes()

    staged = pipeline.stage_analytics_stage(population, "run-2")
    candidate = Path(staged["candidate"])
    assert (
        candidate == warehouse.candidate_path(population) == folder / ".analytics.duckdb.candidate"
    )
    # Not openable by analysts: hidden, not *.duckdb, owner-only; nor by the dashboard.
    assert _mode(candidate) == 0o400
    assert _mode(warehouse.commissioning_candidate_path(population)) == 0o400
    assert sorted(p.name for p in folder.glob("*.duckdb")) == ["analytics.duckdb"]
    assert sorted(p.name for p in (folder / "commissioning").glob("*.duckdb")) == [
        "commissioning.duckdb"
    ]
    assert read_stamp(candidate)["run_id"] == "run-2"
    assert dashboard_data.published_run(folder)["run_id"] == PREVIOUS_RUN
    assert (published.read_bytes(), _mode(published), published.stat().st_mtime_ns) == before

    # The population has people with k < 5 on their demographics: set to fail, it fails.
    monkeypatch.setenv("JOINEDUP_PRIVACY_ON_LOW_K", "fail")
    with pytest.raises(PrivacyRiskError, match="marts staged to publish break") as raised:
        pipeline.privacy_report_stage(population, "run-2", candidate=staged["candidate"])
    message = str(raised.value)
    assert "k < 5" in message and "Nothing was published: analytics.duckdb and" in message
    assert "published already" not in message

    # The previous file, byte for byte; the failed candidate gone; only the report left.
    assert (published.read_bytes(), _mode(published), published.stat().st_mtime_ns) == before
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "analytics.duckdb",
        "commissioning",
        COMMISSIONING,
    ]
    assert (folder / COMMISSIONING).read_bytes() == commissioning_before
    assert not (population / ".analytics.duckdb.candidate").exists()
    report = json.loads((population / "privacy" / "report.json").read_text())
    assert report["status"] == "fail"
    analytics = report["publications"]["analytics"]
    assert analytics["database"] == str(candidate) and analytics["published_as"] == str(published)
    assert report["run_id"] == "run-2"

    # The publish task, were it reached, has nothing to publish.
    digests = {p: r["sha256"] for p, r in report["publications"].items()}
    with pytest.raises(warehouse.WarehouseError, match="nothing to publish"):
        pipeline.publish_stage(population, "run-2", digests)
    assert published.read_bytes() == before[0]
    assert dashboard_data.published_run(folder)["run_id"] == PREVIOUS_RUN


def test_a_passing_report_publishes_the_bytes_it_measured(population: Path) -> None:
    published = population / "analytics.duckdb"
    previous = _tables(published)  # publish_analytics's file, from the same warehouse

    staged = pipeline.stage_analytics_stage(population, "run-2")
    risk = pipeline.privacy_report_stage(population, "run-2", candidate=staged["candidate"])
    assert risk["status"] != "fail"
    candidates = {p: Path(c) for p, c in staged["candidates"].items()}
    assert risk["sha256"] == {p: _sha256(c) for p, c in candidates.items()}
    assert read_stamp(published)["run_id"] == PREVIOUS_RUN  # still the last run's
    commissioning = population / COMMISSIONING
    previous_commissioning = _tables(commissioning)

    done = pipeline.publish_stage(population, "run-2", risk["sha256"])
    # What finalise hashes: both publications.
    assert done == {"analytics": str(published), "commissioning": str(commissioning)}
    assert _sha256(published) == risk["sha256"]["analytics"]
    assert _sha256(commissioning) == risk["sha256"]["commissioning"]
    assert _mode(published) == 0o400 and _mode(commissioning) == 0o444
    assert read_stamp(commissioning)["run_id"] == "run-2"
    assert _tables(commissioning) == previous_commissioning
    assert not any(c.exists() for c in candidates.values())
    assert read_stamp(published)["run_id"] == "run-2"
    assert not Path(staged["candidate"]).exists()
    assert not [p.name for p in population.iterdir() if "analytics.duckdb" in p.name[1:]]
    # The same content as the one-step publish: every mart, row and description.
    assert _tables(published) == previous
    report = json.loads((population / "privacy" / "report.json").read_text())
    assert {p: r["sha256"] for p, r in report["publications"].items()} == risk["sha256"]
    assert report["status"] == risk["status"]


def test_publish_refuses_a_candidate_the_report_did_not_measure(population: Path) -> None:
    published = population / "analytics.duckdb"
    before = published.read_bytes()
    staged = Path(pipeline.stage_analytics_stage(population, "run-2")["candidate"])
    paths = warehouse.candidate_paths(population)
    measured = {p: _sha256(c) for p, c in paths.items()}
    # Replaced after the report measured it (here by another run's stage_analytics).
    warehouse.stage_analytics(population, "run-3")
    assert _sha256(staged) != measured["analytics"]
    with pytest.raises(warehouse.WarehouseError, match="not the file the privacy report"):
        pipeline.publish_stage(population, "run-2", measured)
    # Even with its checksum, a candidate another run staged is not this run's to publish.
    with pytest.raises(warehouse.WarehouseError, match="staged by run 'run-3', not 'run-2'"):
        pipeline.publish_stage(population, "run-2", {p: _sha256(c) for p, c in paths.items()})
    assert published.read_bytes() == before and staged.exists()


def test_publish_refuses_a_candidate_with_no_measurement(population: Path) -> None:
    published = population / "analytics.duckdb"
    before = published.read_bytes()
    staged = Path(pipeline.stage_analytics_stage(population, "run-2")["candidate"])
    # The checksum is required: no call can publish a candidate no report measured.
    with pytest.raises(TypeError):
        warehouse.publish_candidate(population, run_id="run-2")  # type: ignore[call-arg]
    for missing in ({}, {"analytics": "", "commissioning": ""}):
        with pytest.raises(warehouse.WarehouseError, match="no privacy report's SHA-256"):
            warehouse.publish_candidate(population, sha256=missing, run_id="run-2")
    # One checksum cannot vouch for two files.
    for wrong in ("", None, _sha256(staged)):
        with pytest.raises(warehouse.WarehouseError, match="SHA-256 of each publication"):
            warehouse.publish_candidate(population, sha256=wrong, run_id="run-2")  # type: ignore[arg-type]
    assert published.read_bytes() == before and staged.exists()


def test_the_run_summary_names_the_published_file_where_it_is(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from joinedup.report import format_run_summary as render

    elsewhere = tmp_path / "published"
    elsewhere.mkdir()
    monkeypatch.setenv("JOINEDUP_PUBLISHED_DIR", str(elsewhere))
    summary = {"run_id": "run-2", "ledger": {"tables": {}}}
    # Published in the data dir only (from before the setting): the summary does not list it.
    assert "analytics marts" not in render(population, summary)
    warehouse.publish_analytics(population, "run-2")
    text = render(population, summary)
    assert f"analytics marts   {elsewhere / 'analytics.duckdb'}" in text
    assert f"commissioning     {elsewhere / COMMISSIONING}" in text
    assert "make dashboard" in text


_KILLED_AFTER_STAGING = """
import os, signal, sys
from pathlib import Path
from joinedup.pipeline import stage_analytics_stage
stage_analytics_stage(Path(sys.argv[1]), "run-2")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.crash
def test_a_run_killed_between_stage_and_publish(population: Path) -> None:
    published = population / "analytics.duckdb"
    before = published.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_AFTER_STAGING, str(population)], env=env
    ) as killed:
        assert killed.wait(timeout=300) == -signal.SIGKILL
    candidate = warehouse.candidate_path(population)
    assert published.read_bytes() == before and _mode(candidate) == 0o400
    # A killed writer's temporary of the candidate (and its log), left mid-write.
    dead = population / f"..analytics.duckdb.candidate.tmp-{killed.pid}"
    dead.write_bytes(b"half a database")
    dead.with_name(dead.name + ".wal").write_bytes(b"not a wal")
    # Cleanup takes temporaries of dead writers only: the staged candidate is no temporary
    # (its writer finished; the report and publish may run in other processes).
    removed = remove_stale_temporaries(population)
    assert sorted(p.name for p in removed) == sorted([dead.name, dead.name + ".wal"])
    assert candidate.exists()

    # The next run stages again over it and publishes what its report measured.
    staged = pipeline.stage_analytics_stage(population, "run-3")
    risk = pipeline.privacy_report_stage(population, "run-3", candidate=staged["candidate"])
    pipeline.publish_stage(population, "run-3", risk["sha256"])
    assert read_stamp(published)["run_id"] == "run-3" and not candidate.exists()
