"""Provenance: every run records what it read, with which code and model, and what it wrote.

A small synthetic population goes through the real stages (ingest, opt-outs,
pseudonymise, Splink linkage) and ``pipeline.finalise``; the run record is then
checked against checksums computed here from the files themselves.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from ingest_fixtures import KEY, run_all
from typer.testing import CliRunner

from joinedup import linkage, pipeline, provenance
from joinedup.catalogue import COMMISSIONING
from joinedup.cli import app
from joinedup.ingest.ledger import read_ledger
from joinedup.report import format_run_summary
from joinedup.settings import DEMO_KEY
from joinedup.synth import generate
from joinedup.warehouse import publish_analytics

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    data = tmp_path_factory.mktemp("provenance") / "data"
    generate(data, people=600, seed=19)
    shutil.copyfile(data / "landing/gp/events_202504.csv", data / "landing/gp/events_resent.csv")
    run_all(data, "run-1", KEY)
    linked = linkage.link(data, "run-1", KEY, charts=False)
    return data, pipeline.finalise(data, "run-1", {"linkage": linked})


def test_run_record_names_the_code_libraries_and_linkage_model(run: tuple[Path, dict]) -> None:
    data, summary = run
    record = json.loads(pipeline.run_summary_path(data, "run-1").read_text())
    prov = record["provenance"]
    assert prov == summary["provenance"]
    assert prov["run_id"] == "run-1"
    assert prov["started_at"] is not None and prov["started_at"] <= prov["finished_at"]
    if (REPO / ".git").exists():
        commit = prov["code"]["git_commit"]
        # Taken when the run started; commits may land since: it is HEAD or an ancestor.
        git("merge-base", "--is-ancestor", commit, "HEAD")
        assert isinstance(prov["code"]["git_dirty"], bool)
        assert prov["code"]["version"] == commit + ("-dirty" if prov["code"]["git_dirty"] else "")
    started = json.loads(provenance.run_record_path(data, "run-1", ".started").read_text())
    assert (started["started_at"], started["code"]) == (prov["started_at"], prov["code"])
    assert prov["libraries"]["polars"] == pl.__version__
    assert prov["libraries"]["duckdb"] == duckdb.__version__
    assert prov["libraries"]["python"] == ".".join(map(str, sys.version_info[:3]))
    model = prov["linkage"]["model"]
    assert model["path"] == "linked/model.json"
    assert model["sha256"] == sha256(data / "linked/model.json")
    assert prov["linkage"]["spec"] == {
        name: sha256(REPO / name) for name in ("linkage/settings.json", "linkage/training.json")
    }


def test_every_input_file_is_recorded_with_checksum_size_and_rows(run: tuple[Path, dict]) -> None:
    data, summary = run
    inputs = {i["file"]: i for i in summary["provenance"]["inputs"]}
    landing = sorted((data / "landing").glob("*/*.csv"))
    assert set(inputs) == {p.relative_to(data).as_posix() for p in landing}
    ledger = {
        r["file"]: r for r in read_ledger(data).filter(pl.col("run_id") == "run-1").to_dicts()
    }
    for path in landing:
        name = path.relative_to(data).as_posix()
        rows = pl.read_csv(path, infer_schema=False).height
        expected = (sha256(path), path.stat().st_size, rows)
        got = inputs[name]
        assert (got["sha256"], got["size_bytes"], got["file_rows"]) == expected, name
        # Kept with the ledger too.
        kept = ledger[name]
        assert (kept["sha256"], kept["size_bytes"], kept["file_rows"]) == expected, name
    assert inputs["landing/gp/events_resent.csv"]["status"] == "duplicate"
    assert inputs["landing/gp/events_202504.csv"]["status"] == "loaded"


def test_every_output_is_listed_with_its_checksum(run: tuple[Path, dict]) -> None:
    data, summary = run
    outputs = {o["path"]: o for o in summary["provenance"]["outputs"]}
    expected = {
        p.relative_to(data).as_posix()
        for pattern in ("pseudonymised/*/*.parquet", "quarantine/*/*.parquet")
        for p in data.glob(pattern)
    } | {"linked/record_person.parquet", "linked/model.json", "linked/summary.json"}
    assert expected <= set(outputs)
    assert not any(p.startswith(("landing/", "restricted/")) for p in outputs)
    for name, entry in outputs.items():
        assert (entry["sha256"], entry["size_bytes"]) == (
            sha256(data / name),
            (data / name).stat().st_size,
        ), name


def test_neither_the_key_nor_any_hash_of_it_is_recorded(run: tuple[Path, dict]) -> None:
    data, _ = run
    key = DEMO_KEY.encode()
    forbidden = [DEMO_KEY] + [
        hashlib.new(name, key).hexdigest() for name in ("sha256", "sha1", "md5", "sha512")
    ]
    for path in [data / "ledger.csv", *(data / "runs").iterdir()]:
        text = path.read_text()
        assert not [f for f in forbidden if f in text], path


def test_an_output_is_traced_to_the_run_that_wrote_it(
    run: tuple[Path, dict], tmp_path: Path
) -> None:
    data, _ = run
    events = data / "pseudonymised/gp/events.parquet"
    assert provenance.trace(data, events) == [
        {
            "run_id": "run-1",
            "finished_at": run[1]["provenance"]["finished_at"],
            "role": "output",
            "path": "pseudonymised/gp/events.parquet",
        }
    ]
    assert [t["role"] for t in provenance.trace(data, data / "landing/gp/patients.csv")] == [
        "input"
    ]
    cli = ["trace", "--data-dir", str(data)]
    done = CliRunner().invoke(app, [*cli, str(events)])
    assert done.exit_code == 0, done.output
    assert "output of run run-1" in done.stdout
    # A changed file belongs to no run, and the command says so.
    changed = tmp_path / "events.parquet"
    changed.write_bytes(events.read_bytes() + b"\0")
    done = CliRunner().invoke(app, [*cli, str(changed)])
    assert done.exit_code == 1
    assert "no run record" in done.stderr
    assert isinstance(done.exception, SystemExit)  # a clean exit with a message, not a crash


def test_run_summary_shows_provenance_and_skipped_files(run: tuple[Path, dict]) -> None:
    data, summary = run
    text = format_run_summary(data, summary)
    assert f"provenance: code {summary['provenance']['code']['version']}" in text
    model = summary["provenance"]["linkage"]["model"]["sha256"]
    assert f"linkage model sha256 {model[:16]}" in text
    assert "1 duplicate(s) not loaded again" in text
    assert "landing/gp/events_resent.csv: same content as landing/gp/events_202504.csv" in text
    assert str(pipeline.run_summary_path(data, "run-1")) in text


def test_published_analytics_names_its_run_and_the_dashboard_reads_it(
    run: tuple[Path, dict], tmp_path: Path
) -> None:
    data, _ = run
    target = tmp_path / "data"
    (target / "linked").mkdir(parents=True)
    shutil.copyfile(data / "linked/model.json", target / "linked/model.json")
    with duckdb.connect(str(target / "warehouse.duckdb")) as con:
        con.execute("create schema marts")
        con.execute("create table marts.mart_example as select 'total' as breakdown, 10 as n")
        con.execute("comment on table marts.mart_example is 'an example mart'")

    provenance.mark_started(target, "run-9")
    started = json.loads(provenance.run_record_path(target, "run-9", ".started").read_text())
    published = publish_analytics(target, "run-9")["commissioning"]  # the mart_ file
    stamp = provenance.read_stamp(published)
    assert stamp is not None
    assert (stamp["run_id"], stamp["started_at"]) == ("run-9", started["started_at"])
    assert stamp["code_version"] == started["code"]["version"]
    assert stamp["linkage_model_sha256"] == sha256(data / "linked/model.json")
    with duckdb.connect(str(published), read_only=True) as con:
        tables = con.execute(
            "select table_name, comment is not null from duckdb_tables() order by 1"
        ).fetchall()
    assert tables == [("_joinedup_run", True), ("mart_example", True)]

    sys.path.insert(0, str(REPO))  # the dashboard package
    from dashboard.data import published_run

    assert published_run(target) == stamp
    # Without a run id nothing is stamped, and the dashboard says it cannot tell.
    publish_analytics(target)
    assert provenance.read_stamp(published) is None
    assert published_run(target) is None


def _coverage_page(data_dir: str) -> None:
    """The dashboard's data-coverage page alone, as the app renders it (run by AppTest)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path.cwd()))
    from dashboard import ui
    from dashboard.data import Filters, catalogue
    from dashboard.views import coverage

    coverage.render(ui.Context(Path(data_dir), catalogue(Path(data_dir)), Filters()))


def test_coverage_page_shows_the_run_behind_the_marts_and_its_files(
    published_population: Path, tmp_path: Path
) -> None:
    from streamlit.testing.v1 import AppTest

    from joinedup.ingest import ingest_source

    data = tmp_path / "data"
    for name in ("landing/gp", "linked/model.json", "linked/summary.json", "warehouse.duckdb"):
        source = published_population / name
        copy = shutil.copytree if source.is_dir() else shutil.copyfile
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        copy(source, data / name)
    # Run 2 receives the GP events twice and publishes the marts; run 3 only ingests after.
    shutil.copyfile(data / "landing/gp/events_202504.csv", data / "landing/gp/events_again.csv")
    ingest_source(data, "gp", "run-2")
    publish_analytics(data, "run-2")
    (data / "landing/gp/events_again.csv").unlink()
    ingest_source(data, "gp", "run-3")

    page = AppTest.from_function(_coverage_page, args=(str(data),), default_timeout=60)
    page.run()
    assert not page.exception, page.exception
    text = "\n".join(m.value for m in page.markdown)
    # The dashboard reads the commissioners' publication and shows the run that wrote it.
    stamp = provenance.read_stamp(COMMISSIONING.under(data))
    assert f"run `run-2`, published {stamp['written_at']}" in text
    assert f"code `{stamp['code_version']}`" in text
    files = page.table[0].value
    gp = files[files["Source"] == "GP"].iloc[0]
    # The patient list, twelve monthly event files and the re-sent copy of one of them.
    assert (gp["Files received"], gp["Duplicates not loaded again"]) == ("14 files", "1 file")
    assert "Files of run `run-2`" in "\n".join(c.value for c in page.caption)
