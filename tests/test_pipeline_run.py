"""`joinedup run`: the real Airflow DAGs run in-process end to end on a synthetic population."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from joinedup.pipeline import PROJECT_VOCABULARY
from joinedup.privacy.scan import scan, summarise
from joinedup.settings import DEMO_KEY

# `joinedup run` end to end through the real DAGs, twice: minutes on two cores.
pytestmark = pytest.mark.slow


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "joinedup.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def finished_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess]:
    data_dir = tmp_path_factory.mktemp("run")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["JOINEDUP_PSEUDONYMISATION_KEY"] = DEMO_KEY
    done = _run(
        ["run", "--data-dir", str(data_dir), "--demo-people", "1500", "--run-id", "t1"], env
    )
    return data_dir, done


def test_run_succeeds_and_summarises(finished_run) -> None:
    data_dir, done = finished_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "joinedup_link_and_build" in out and "success" in out
    assert "ledger balances" in out and "linkage:" in out and "privacy gate" in out
    ledger = pl.read_csv(data_dir / "ledger.csv").filter(pl.col("run_id") == "t1")
    assert ledger.height >= 8
    balance = pl.col("rows_loaded") + pl.col("rows_quarantined") + pl.col("rows_opted_out")
    assert ledger.filter(pl.col("rows_received") != balance).height == 0
    assert (data_dir / "linked" / "record_person.parquet").exists()
    assert (data_dir / "runs" / "t1.json").exists()


def test_linked_opt_outs_run_between_link_and_finalise(finished_run) -> None:
    data_dir, done = finished_run
    assert done.returncode == 0
    summary = json.loads((data_dir / "runs" / "t1.json").read_text())
    linked = summary["linked_opt_outs"]
    assert linked["run_id"] == "t1"
    # Every file's opted-out rows are explained by reason, linkage included.
    ledger = pl.read_csv(data_dir / "ledger.csv").filter(pl.col("run_id") == "t1")
    # A CLD submission feeds two tables (clients and events): its ledger rows add up.
    by_file = ledger.group_by("file").agg(pl.col("rows_opted_out").sum())
    assert by_file["file"].str.contains("cld_").any()
    for row in by_file.iter_rows(named=True):
        split = linked["rows_opted_out_by_file"].get(row["file"], {"total": 0})
        assert split["total"] == row["rows_opted_out"], row["file"]
    assert (data_dir / "restricted" / "linkage_opted_out_applied.parquet").exists()


def test_the_key_is_in_no_output_or_log(finished_run, tmp_path: Path) -> None:
    data_dir, done = finished_run
    assert done.returncode == 0
    key = DEMO_KEY.encode()
    assert key not in done.stdout.encode() + done.stderr.encode()
    holders = [p for p in data_dir.rglob("*") if p.is_file() and key in p.read_bytes()]
    assert holders == []
    # The Airflow log of the run exists and was searched above.
    assert list((data_dir / "airflow" / "logs").glob("t1.log"))

    # Nor is any identifier of the landing data (name, NHS number, date of birth,
    # postcode, local id) in a log: Airflow's, dbt's, or what the command printed.
    console = tmp_path / "console.txt"
    console.write_text(done.stdout + done.stderr)
    logs = [p for p in data_dir.rglob("*.log") if p.relative_to(data_dir).parts[0] != "landing"]
    assert {data_dir / "airflow" / "logs" / "t1.log", data_dir / "dbt" / "logs" / "dbt.log"} <= set(
        logs
    )
    findings = scan(data_dir / "landing", [*logs, console], vocabulary=PROJECT_VOCABULARY)
    assert findings.height == 0, summarise(findings)  # counts per file and kind, no values

    # The same scan does see identifiers written to a log: a few patients', planted.
    patients = pl.read_csv(data_dir / "landing" / "gp" / "patients.csv", infer_schema=False)
    lines = [
        "INFO rejected {given_name} {family_name} {nhs_number} {date_of_birth} {postcode}".format(
            **p
        )
        for p in patients.drop_nulls(["nhs_number", "date_of_birth", "postcode"])
        .head(20)
        .iter_rows(named=True)
    ]
    planted = tmp_path / "planted.log"
    planted.write_text((data_dir / "airflow" / "logs" / "t1.log").read_text() + "\n".join(lines))
    kinds = set(scan(data_dir / "landing", [planted], vocabulary=PROJECT_VOCABULARY)["kind"])
    assert {"name", "nhs_number", "date_of_birth", "postcode"} <= kinds


def test_run_without_a_key_stops_with_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "JOINEDUP_"))}
    done = _run(["run", "--data-dir", str(tmp_path)], env)
    assert done.returncode == 2
    assert "JOINEDUP_PSEUDONYMISATION_KEY" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "landing").exists()


def test_run_publishes_marts_and_documentation(finished_run) -> None:
    import duckdb

    data_dir, done = finished_run
    assert done.returncode == 0
    from joinedup.catalogue import COMMISSIONING, PUBLISHED

    def tables_of(path: Path) -> set[str]:
        with duckdb.connect(str(path), read_only=True) as con:
            return {r[0] for r in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}

    # Commissioners' file: the marts, their description, the run that published them.
    commissioning = tables_of(COMMISSIONING.under(data_dir))
    from joinedup.quality.marts import commissioner_marts

    assert commissioning == {*commissioner_marts(), "_joinedup_marts", "_joinedup_run"}
    assert {"mart_readmissions", "mart_bcf_metrics"} <= commissioning
    # Analysts' file: the person-level marts and the run stamp alone.
    analytics = tables_of(PUBLISHED.under(data_dir)) - {"_joinedup_run"}
    assert "dim_person" in analytics
    assert all(t.startswith(("dim_", "fct_")) for t in analytics)
    docs = (data_dir / "quality" / "docs" / "index.html").read_text()
    for zone in ("landing", "pseudonymised", "linked", "marts"):
        assert zone in docs
    assert (data_dir / "docs" / "dbt" / "static_index.html").exists()
    assert "quality gates:" in done.stdout


def test_run_records_its_provenance_and_stamps_the_duckdb_files(finished_run) -> None:
    import hashlib

    from joinedup.provenance import read_stamp

    data_dir, done = finished_run
    assert done.returncode == 0
    prov = json.loads((data_dir / "runs" / "t1.json").read_text())["provenance"]
    outputs = {o["path"]: o["sha256"] for o in prov["outputs"]}
    model = prov["linkage"]["model"]["sha256"]
    for name in ("warehouse.duckdb", "analytics.duckdb", "commissioning/commissioning.duckdb"):
        assert outputs[name] == hashlib.sha256((data_dir / name).read_bytes()).hexdigest()
        stamp = read_stamp(data_dir / name)
        assert stamp is not None and stamp["run_id"] == "t1", name
        assert stamp["code_version"] == prov["code"]["version"]
        assert stamp["linkage_model_sha256"] == model
    ledger = pl.read_csv(data_dir / "ledger.csv", infer_schema=False).filter(
        pl.col("run_id") == "t1"
    )
    assert sorted(ledger["sha256"]) == sorted(i["sha256"] for i in prov["inputs"])
    assert prov["started_at"] <= prov["finished_at"]
    assert f"provenance: code {prov['code']['version']}" in done.stdout


def test_run_reports_reidentification_risk(finished_run) -> None:
    import duckdb

    data_dir, done = finished_run
    assert done.returncode == 0
    privacy = data_dir / "privacy"
    report = json.loads((privacy / "report.json").read_text())
    page = (privacy / "report.html").read_text()
    assert (privacy / "data_protection_pack.html").exists()
    risk = json.loads((data_dir / "runs" / "t1.json").read_text())["privacy_report"]
    with duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True) as con:
        people = con.execute("select count(*) from dim_person").fetchone()[0]
    # The run summary carries the report's figures, measured on what was published.
    assert risk["person_level"]["demographics"]["persons"] == people
    assert risk["status"] == report["status"] != "fail"  # warn by default: the run succeeds
    assert risk["aggregates"]["rule_breaches"] == 0
    assert f'<td class="n">{people:,}</td>' in page
    assert "privacy report (" in done.stdout and str(privacy / "report.html") in done.stdout


def test_a_failed_critical_gate_stops_the_run_and_keeps_the_published_marts(
    finished_run, tmp_path: Path
) -> None:
    data_dir, done = finished_run
    assert done.returncode == 0
    copy = tmp_path / "truncated"
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("airflow"))
    publications = ("analytics.duckdb", "commissioning/commissioning.duckdb")
    published = [(copy / name).read_bytes() for name in publications]
    # Half of the GP registrations go missing: a truncated delivery.
    patients = copy / "landing" / "gp" / "patients.csv"
    lines = patients.read_text().splitlines()
    patients.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["JOINEDUP_PSEUDONYMISATION_KEY"] = DEMO_KEY
    again = _run(["run", "--data-dir", str(copy), "--run-id", "t2"], env)
    assert again.returncode == 1
    assert "at task quality_gate_landing" in again.stderr
    assert "QualityGateError" in again.stderr and "landing.volumes" in again.stderr
    assert [(copy / name).read_bytes() for name in publications] == published


def test_every_path_a_run_writes_is_in_a_declared_zone_with_its_mode(finished_run) -> None:
    """Record-level data, unsuppressed counts and Airflow state are the owner's alone.

    Every path under the data directory lies in a zone of the catalogue; a private zone
    is a 0700 folder (or a 0600 file) whatever the umask, so nothing inside it can be
    read by another account; only the publications are readable beyond the owner.
    """
    import stat

    from joinedup.catalogue import ZONES

    data_dir, done = finished_run
    assert done.returncode == 0
    roots = sorted((z for z in ZONES), key=lambda z: -len(z.path))
    private = {z.path for z in ZONES if z.private}
    for zone in ("ledger.csv", "runs", "privacy", "airflow", "dbt", "quality", "warehouse.duckdb"):
        assert zone in private, zone
    strays, loose = [], []
    for path in data_dir.rglob("*"):
        rel = path.relative_to(data_dir).as_posix()
        zone = next((z for z in roots if rel == z.path or rel.startswith(z.path + "/")), None)
        if zone is None:
            folder_of_a_zone = any(z.path.startswith(rel + "/") for z in ZONES)  # docs/
            if not folder_of_a_zone and not rel.startswith("truth"):  # truth: the generator's
                strays.append(rel)
            continue
        if zone.private and rel == zone.path:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode != (0o700 if path.is_dir() else 0o600):
                loose.append(f"{rel} {mode:o}")
    assert not strays, strays[:20]
    assert not loose, loose
