"""Re-deliveries: the same file twice is loaded once; a corrected month replaces the old one.

Every test writes real landing CSV files and runs the real stages (ingest, opt-outs,
pseudonymise, the ledger's balance check and, for the volume gate, Great
Expectations) on them.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest
from ingest_fixtures import PRACTICE, TODAY, gp_id, run_all, write_landing, write_table

from joinedup.catalogue import quarantine_path, validated_path
from joinedup.contracts import GP_EVENTS
from joinedup.ingest import finalise_ledger, ingest_source
from joinedup.ingest.ledger import read_ledger

EVENTS = "landing/gp/events.csv"


def ingest(data_dir: Path, run_id: str) -> dict:
    return ingest_source(data_dir, "gp", run_id, today=TODAY)


def ledger_row(data_dir: Path, run_id: str, file: str) -> dict:
    rows = read_ledger(data_dir).filter((pl.col("run_id") == run_id) & (pl.col("file") == file))
    assert rows.height == 1, f"{file} has {rows.height} ledger rows in {run_id}"
    return rows.row(0, named=True)


def loaded_events(data_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(validated_path(data_dir, GP_EVENTS))


def month(yyyy_mm: str) -> pl.Expr:
    return pl.col("event_date").dt.strftime("%Y-%m") == yyyy_mm


def event(person: str, day: str, code: str, practice: str = PRACTICE) -> dict[str, str]:
    return {
        "practice_code": practice,
        "gp_patient_id": gp_id(person),
        "event_date": day,
        "snomed_code": code,
    }


APRIL = [
    event("alice", "2025-04-02", "38341003"),
    event("alice", "2025-04-20", "44054006"),
    event("frank", "2025-04-11", "195967001"),
]


def test_same_file_under_another_name_is_loaded_once_and_downstream_is_unchanged(
    tmp_path: Path,
) -> None:
    clean, resent = tmp_path / "clean", tmp_path / "resent"
    for d in (clean, resent):
        write_landing(d)
    shutil.copyfile(resent / EVENTS, resent / "landing/gp/events_resent.csv")

    run_all(clean)
    summary = run_all(resent)

    copy = ledger_row(resent, "run-1", "landing/gp/events_resent.csv")
    original = ledger_row(resent, "run-1", EVENTS)
    assert copy["status"] == "duplicate" and copy["duplicate_of"] == EVENTS
    assert (copy["rows_received"], copy["rows_loaded"], copy["rows_quarantined"]) == (0, 0, 0)
    assert (
        copy["sha256"]
        == original["sha256"]
        == hashlib.sha256((resent / EVENTS).read_bytes()).hexdigest()
    )
    assert copy["file_rows"] == original["file_rows"] == original["rows_received"] > 0
    # Not a single row of the copy was read: none quarantined as a duplicate key either.
    quarantined = pl.read_parquet(quarantine_path(resent, GP_EVENTS))
    assert quarantined.filter(pl.col("file").str.contains("resent")).is_empty()
    assert summary["ledger"]["deliveries"]["duplicate"] == 1
    assert summary["ingest"][0]["skipped_files"] == [
        {"file": "landing/gp/events_resent.csv", "status": "duplicate", "by": EVENTS}
    ]
    # Everything downstream is byte for byte what the delivery without the copy gave.
    outputs = sorted(p.relative_to(clean) for p in (clean / "pseudonymised").rglob("*.parquet"))
    assert outputs
    for rel in outputs:
        assert (resent / rel).read_bytes() == (clean / rel).read_bytes(), rel
    totals = ["rows_received", "rows_loaded", "rows_quarantined", "rows_opted_out"]
    assert {k: summary["ledger"][k] for k in totals} == {
        k: finalise_ledger(clean, "run-1")[k] for k in totals
    }


def test_same_content_in_a_later_run_is_a_duplicate_whatever_its_name(tmp_path: Path) -> None:
    write_landing(tmp_path)
    write_table(tmp_path, "gp/events", APRIL, "events_2025-04.csv")
    ingest(tmp_path, "run-1")
    # Arrives later under a name that sorts first: arrival decides, not the name.
    shutil.copyfile(
        tmp_path / "landing/gp/events_2025-04.csv", tmp_path / "landing/gp/events_0_resent.csv"
    )
    ingest(tmp_path, "run-2")

    copy = ledger_row(tmp_path, "run-2", "landing/gp/events_0_resent.csv")
    original = ledger_row(tmp_path, "run-2", "landing/gp/events_2025-04.csv")
    assert copy["status"] == "duplicate"
    assert copy["duplicate_of"] == "landing/gp/events_2025-04.csv"
    assert (copy["first_seen_run"], original["first_seen_run"]) == ("run-2", "run-1")
    assert original["status"] == "loaded" and original["rows_loaded"] == len(APRIL)
    assert loaded_events(tmp_path).filter(month("2025-04")).height == len(APRIL)


def test_corrected_month_replaces_the_earlier_delivery_from_ingest_to_pseudonymised(
    tmp_path: Path,
) -> None:
    write_landing(tmp_path)
    write_table(tmp_path, "gp/events", APRIL, "events_2025-04.csv")
    run_all(tmp_path, "run-1")
    before = pl.read_parquet(tmp_path / "pseudonymised/gp/events.parquet")

    # The supplier corrects April: one code fixed, one event withdrawn.
    corrected = [APRIL[0] | {"snomed_code": "73211009"}, APRIL[2]]
    write_table(tmp_path, "gp/events", corrected, "events_2025-04_v2.csv")
    summary = run_all(tmp_path, "run-2")

    old = ledger_row(tmp_path, "run-2", "landing/gp/events_2025-04.csv")
    new = ledger_row(tmp_path, "run-2", "landing/gp/events_2025-04_v2.csv")
    assert (old["status"], old["replaced_by"], old["period"]) == (
        "replaced",
        "landing/gp/events_2025-04_v2.csv",
        "2025-04",
    )
    assert (old["rows_received"], old["rows_loaded"], old["file_rows"]) == (0, 0, len(APRIL))
    assert (new["status"], new["replaces"], new["rows_loaded"]) == (
        "loaded",
        "landing/gp/events_2025-04.csv",
        len(corrected),
    )
    # Run 1's ledger still says the first delivery was loaded then.
    assert ledger_row(tmp_path, "run-1", "landing/gp/events_2025-04.csv")["status"] == "loaded"

    april = loaded_events(tmp_path).filter(month("2025-04"))
    assert sorted(april["snomed_code"]) == sorted(r["snomed_code"] for r in corrected)
    assert set(april["source_file"]) == {"landing/gp/events_2025-04_v2.csv"}
    # Downstream holds the corrected month once: one row fewer than before, nothing doubled.
    after = pl.read_parquet(tmp_path / "pseudonymised/gp/events.parquet")
    assert after.height == before.height - 1
    assert after.filter(month("2025-04")).height == len(corrected)
    assert summary["ledger"]["deliveries"]["replaced"] == 1  # and finalise_ledger balanced


def test_month_from_the_data_and_organisations_decide_what_a_file_replaces(
    tmp_path: Path,
) -> None:
    write_landing(tmp_path)
    may = [event("alice", "2025-05-03", "38341003"), event("frank", "2025-05-09", "44054006")]
    other = [event("bob", "2025-05-04", "38341003", practice="B82002")]
    write_table(tmp_path, "gp/events", may, "events_a81001_may.csv")
    write_table(tmp_path, "gp/events", other, "events_b82002_may.csv")
    ingest(tmp_path, "run-1")
    # No month in these names: every date is in May 2025, so that is the month they deliver.
    assert ledger_row(tmp_path, "run-1", "landing/gp/events_a81001_may.csv")["period"] == "2025-05"

    fixed = [may[0] | {"snomed_code": "73211009"}, may[1]]
    write_table(tmp_path, "gp/events", fixed, "events_a81001_may_fixed.csv")
    ingest(tmp_path, "run-2")
    replaced = ledger_row(tmp_path, "run-2", "landing/gp/events_a81001_may.csv")
    assert replaced["replaced_by"] == "landing/gp/events_a81001_may_fixed.csv"
    # Another practice's May is not touched by a correction that does not cover it.
    kept = ledger_row(tmp_path, "run-2", "landing/gp/events_b82002_may.csv")
    assert (kept["status"], kept["rows_loaded"]) == ("loaded", 1)
    # The baseline file spans years: it has no month and is never replaced.
    assert ledger_row(tmp_path, "run-2", EVENTS)["period"] is None


def test_a_partial_correction_replaces_nothing_and_daily_files_are_not_months(
    tmp_path: Path,
) -> None:
    write_landing(tmp_path)
    both = [event("alice", "2025-06-01", "38341003"), event("bob", "2025-06-02", "1", "B82002")]
    write_table(tmp_path, "gp/events", both, "events_2025-06.csv")
    only_a = [event("alice", "2025-06-01", "73211009")]
    write_table(tmp_path, "gp/events", only_a, "events_2025-06_practice_a.csv")
    write_table(tmp_path, "gp/events", [event("dan", "2025-07-01", "1")], "events_2025-07-01.csv")
    write_table(tmp_path, "gp/events", [event("dan", "2025-07-02", "2")], "events_2025-07-02.csv")
    ingest(tmp_path, "run-1")
    statuses = dict(
        read_ledger(tmp_path)
        .filter(pl.col("file").str.contains("2025-0"))
        .select("file", "status")
        .rows()
    )
    assert set(statuses.values()) == {"loaded"}, statuses
    # Not taken for a correction: practice B's June survives, and practice A keeps both rows.
    june = loaded_events(tmp_path).filter(month("2025-06"))
    assert sorted(june["snomed_code"]) == ["1", "38341003", "73211009"]
    july = loaded_events(tmp_path).filter(month("2025-07"))
    assert july.height == 2


def test_empty_months_are_two_deliveries_and_a_file_corrected_in_place_is_recorded(
    tmp_path: Path,
) -> None:
    write_landing(tmp_path)
    write_table(tmp_path, "gp/events", [], "events_2025-08.csv")
    write_table(tmp_path, "gp/events", [], "events_2025-09.csv")
    write_table(tmp_path, "gp/events", APRIL, "events_2025-04.csv")
    ingest(tmp_path, "run-1")
    first = ledger_row(tmp_path, "run-1", "landing/gp/events_2025-04.csv")
    for month in ("08", "09"):
        row = ledger_row(tmp_path, "run-1", f"landing/gp/events_2025-{month}.csv")
        assert (row["status"], row["file_rows"]) == ("loaded", 0)

    write_table(tmp_path, "gp/events", APRIL[:2], "events_2025-04.csv")  # overwritten
    ingest(tmp_path, "run-2")
    again = ledger_row(tmp_path, "run-2", "landing/gp/events_2025-04.csv")
    assert again["sha256"] != first["sha256"]
    assert (again["status"], again["replaces"], again["rows_loaded"]) == (
        "loaded",
        "landing/gp/events_2025-04.csv",
        2,
    )
    assert again["first_seen_run"] == "run-2"


def test_rerunning_a_run_gives_the_same_ledger(tmp_path: Path) -> None:
    write_landing(tmp_path)
    write_table(tmp_path, "gp/events", APRIL, "events_2025-04.csv")
    ingest(tmp_path, "run-1")
    write_table(tmp_path, "gp/events", APRIL[:1], "events_2025-04_v2.csv")
    shutil.copyfile(tmp_path / EVENTS, tmp_path / "landing/gp/events_copy.csv")
    ingest(tmp_path, "run-2")
    ledger = (tmp_path / "ledger.csv").read_bytes()
    ingest(tmp_path, "run-2")
    assert (tmp_path / "ledger.csv").read_bytes() == ledger


@pytest.mark.slow
def test_landing_volume_gate_is_not_tripped_by_a_duplicate_or_a_replacement(
    tmp_path: Path,
) -> None:
    from joinedup.ingest.load import SOURCES
    from joinedup.quality import run_gates
    from joinedup.quality.landing import current_volumes, read_volumes, record_volumes
    from joinedup.synth import generate

    generate(tmp_path, people=1000, seed=3)
    # Monthly GP event files, as a data service receives them.
    folder = tmp_path / "landing/gp"
    # The generator's first month also carries the earlier history: split by event date.
    written = sorted(folder.glob("events_*.csv"))
    events = pl.concat([pl.read_csv(f, infer_schema=False) for f in written])
    for f in written:
        f.unlink()
    months = events.with_columns(pl.col("event_date").str.slice(0, 7).alias("month"))
    for (yyyy_mm,), rows in months.group_by("month"):
        rows.drop("month").write_csv(folder / f"events_{yyyy_mm}.csv")
    for source in SOURCES:
        ingest_source(tmp_path, source, "run-1")
    # Run 1's volumes become the baseline, as its passing landing gate would record them.
    record_volumes(tmp_path, "run-1", current_volumes(tmp_path))
    loaded_before = loaded_events(tmp_path).height

    busiest = months.group_by("month").len().sort("len").row(-1)[0]
    shutil.copyfile(folder / f"events_{busiest}.csv", folder / "events_resent.csv")
    corrected = pl.read_csv(folder / f"events_{busiest}.csv", infer_schema=False)
    corrected = corrected.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("73211009"))
        .otherwise(pl.col("snomed_code"))
        .alias("snomed_code")
    )
    corrected.write_csv(folder / f"events_{busiest}_v2.csv")
    for source in SOURCES:
        ingest_source(tmp_path, source, "run-2")
    gate = run_gates(tmp_path, "landing", "run-2")

    assert gate["passed"]
    volumes = read_volumes(tmp_path)
    gp = pl.col("source") == "gp"
    one, two = (
        volumes.filter(gp & (pl.col("run_id") == r))
        .select("table", "org_code", "rows")
        .sort("table", "org_code")
        for r in ("run-1", "run-2")
    )
    assert one.equals(two)  # the same rows per practice: nothing counted twice
    statuses = read_ledger(tmp_path).filter(pl.col("run_id") == "run-2")
    # (The hospital feed's year-to-date refreshes replace each other in every run.)
    assert statuses.filter(gp & (pl.col("status") != "loaded")).select("file", "status").sort(
        "file"
    ).rows() == [
        (f"landing/gp/events_{busiest}.csv", "replaced"),
        ("landing/gp/events_resent.csv", "duplicate"),
    ]
    # Every row of the month delivered once is read once: the copy not at all, the
    # replaced month only from its correction (which has as many rows).
    gp_events = statuses.filter(gp & (pl.col("table") == "events"))
    assert gp_events["rows_received"].sum() == events.height
    assert loaded_events(tmp_path).height == loaded_before
