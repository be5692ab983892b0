"""Ingest against the data contracts: hand-made bad extracts get their documented outcome."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from ingest_fixtures import (
    PEOPLE,
    PRACTICE,
    baseline_rows,
    csv_bytes,
    gp_id,
    ingest,
    loaded,
    quarantine,
    run_all,
    write_landing,
    write_table,
)

from joinedup.catalogue import validated_path
from joinedup.contracts import GP_EVENTS, GP_PATIENTS, TABLES
from joinedup.ingest import (
    LedgerImbalanceError,
    MalformedHeaderError,
    MissingColumnsError,
    finalise_ledger,
)
from joinedup.ingest.ledger import CONTRACT_SCHEMA, LEDGER_SCHEMA, read_ledger

RUN = "run-1"


def ledger_balances(data_dir: Path) -> None:
    ledger = read_ledger(data_dir)
    total = ledger["rows_loaded"] + ledger["rows_quarantined"] + ledger["rows_opted_out"]
    assert (ledger["rows_received"] == total).all()


def patient(person: str, **change: str) -> dict[str, str]:
    row = next(r for r in baseline_rows()["gp/patients"] if r["gp_patient_id"] == gp_id(person))
    return row | change


def test_clean_extract_loads_everything_and_the_run_balances(tmp_path: Path) -> None:
    write_landing(tmp_path)
    summary = run_all(tmp_path)
    assert json.loads(json.dumps(summary)) == summary  # stage summaries go into XCom as JSON
    gp = summary["ingest"][0]["tables"]
    assert gp["patients"] == {
        "files": 1,
        "received": len(PEOPLE),
        "loaded": len(PEOPLE),
        "quarantined": 0,
        "quarantine_reasons": {},
    }
    assert summary["ledger"]["rows_quarantined"] == 0
    ledger = read_ledger(tmp_path)
    assert ledger.columns == list(LEDGER_SCHEMA)
    # The contract's columns first, in its order; provenance and re-delivery columns follow.
    header = (tmp_path / "ledger.csv").read_text().splitlines()[0].split(",")
    assert header[: len(CONTRACT_SCHEMA)] == [
        "run_id", "source", "table", "file",
        "rows_received", "rows_loaded", "rows_quarantined", "rows_opted_out",
    ]  # fmt: skip
    assert ledger.height == len(TABLES)  # one row per input file
    ledger_balances(tmp_path)


def test_missing_column_rejects_the_file_with_an_actionable_error(tmp_path: Path) -> None:
    write_landing(tmp_path)
    header = [c for c in GP_PATIENTS.column_names if c not in ("nhs_number", "sex")]
    write_table(tmp_path, "gp/patients", [patient("alice")], "patients_2024_02.csv", header)
    with pytest.raises(MissingColumnsError) as err:
        ingest(tmp_path)
    message = str(err.value)
    assert "landing/gp/patients_2024_02.csv" in message
    assert "nhs_number, sex" in message
    assert "re-deliver" in message
    # The run stopped before anything of this source was written.
    assert not validated_path(tmp_path, GP_PATIENTS).exists()
    assert not validated_path(tmp_path, GP_EVENTS).exists()
    assert not (tmp_path / "ledger.csv").exists()


def test_duplicate_header_column_is_rejected(tmp_path: Path) -> None:
    write_landing(tmp_path)
    header = [*GP_EVENTS.column_names, "event_date"]
    write_table(tmp_path, "gp/events", [], "events_dup.csv", header)
    with pytest.raises(MalformedHeaderError, match=r"events_dup\.csv.*event_date"):
        ingest(tmp_path)


def test_columns_in_any_order_and_extra_columns_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_landing(tmp_path)
    header = ["comment", *reversed(GP_PATIENTS.column_names)]
    rows = [patient("alice", gp_patient_id="G09001") | {"comment": "moved"}]
    write_table(tmp_path, "gp/patients", rows, "patients_extra.csv", header)
    with caplog.at_level(logging.WARNING):
        ingest(tmp_path)
    expected = "patients_extra.csv: ignoring extra column(s) not in the contract: comment"
    assert expected in caplog.text
    got = loaded(tmp_path, "gp/patients").filter(pl.col("gp_patient_id") == "G09001")
    assert got.row(0, named=True)["given_name"] == "Alice"
    assert "comment" not in got.columns


def test_header_only_file_is_a_valid_empty_delivery(tmp_path: Path) -> None:
    write_landing(tmp_path)
    write_table(tmp_path, "gp/events", [], "events_2024_03.csv")
    ingest(tmp_path)
    ledger = read_ledger(tmp_path).filter(pl.col("file") == "landing/gp/events_2024_03.csv")
    assert ledger.select(CONTRACT_SCHEMA.keys() - {"run_id", "source", "table", "file"}).row(0) == (
        0,
        0,
        0,
        0,
    )
    ledger_balances(tmp_path)


def test_blank_required_values_and_bad_event_dates_are_quarantined(tmp_path: Path) -> None:
    rows = baseline_rows()
    rows["gp/patients"].append(patient("alice", gp_patient_id="  "))
    rows["gp/events"] += [
        {"practice_code": PRACTICE, "gp_patient_id": gp_id("alice"), "event_date": d,
         "snomed_code": "38341003"}
        for d in ("", "2023-02-30", "05/01/2023", "2023-1-5")
    ]  # fmt: skip
    write_landing(tmp_path, rows)
    ingest(tmp_path)
    assert quarantine(tmp_path, "gp/patients")["reason"].to_list() == ["missing:gp_patient_id"]
    events = quarantine(tmp_path, "gp/events")
    assert events["reason"].to_list() == ["missing:event_date"] + ["invalid_date:event_date"] * 3
    # Original text kept, with file and line (header = line 1).
    assert events["event_date"].to_list() == ["", "2023-02-30", "05/01/2023", "2023-1-5"]
    assert events["line"].to_list() == [14, 15, 16, 17]
    assert set(events["file"]) == {"landing/gp/events.csv"}
    ledger_balances(tmp_path)


def test_defective_identifiers_are_nulled_and_flagged_not_quarantined(tmp_path: Path) -> None:
    rows = baseline_rows()
    rows["gp/patients"] = [
        patient("alice", nhs_number="4000000005", postcode="LS1", date_of_birth="2030-01-01"),
        patient("bob", nhs_number="", sex="M", date_of_birth="1899-12-31", postcode=" ls27xy "),
        patient("carol", nhs_number="400 000 0020", date_of_birth="1990-2-14", sex=" 2 "),
    ]
    write_landing(tmp_path, rows)
    ingest(tmp_path)
    assert quarantine(tmp_path, "gp/patients").is_empty()
    got = loaded(tmp_path, "gp/patients").sort("gp_patient_id")
    cols = ["nhs_number", "nhs_number_status", "date_of_birth_status", "sex", "sex_status"]
    assert got.select(cols).rows() == [
        (None, "invalid", "invalid", "2", "valid"),
        (None, "blank", "invalid", None, "invalid"),
        ("4000000020", "valid", "invalid", "2", "valid"),
    ]
    assert got["date_of_birth"].to_list() == [None, None, None]
    assert got.select("postcode", "postcode_status").rows() == [
        (None, "invalid"),
        ("LS2 7XY", "valid"),
        ("LS6 1AA", "valid"),
    ]


def test_unknown_codes_quarantined_where_the_code_decides_meaning(tmp_path: Path) -> None:
    rows = baseline_rows()
    apc = rows["hospital/apc_episodes"]
    apc[0] |= {"admission_method": "2a"}  # known code in the wrong case: canonicalised
    apc[1] |= {"admission_method": "XX"}
    apc[2] |= {"discharge_destination": "77"}
    rows["hospital/ae_attendances"][0] |= {"disposal": "vanished", "arrival_datetime": "soon"}
    rows["social_care/events"][0] |= {"service_type": "home CARE"}
    rows["social_care/events"][1] |= {"event_type": "complaint"}
    write_landing(tmp_path, rows)
    ingest(tmp_path, "hospital")
    ingest(tmp_path, "social_care")
    assert quarantine(tmp_path, "hospital/apc_episodes")["reason"].to_list() == [
        "unknown_code:admission_method",
        "unknown_code:discharge_destination",
    ]
    assert loaded(tmp_path, "hospital/apc_episodes")["admission_method"].to_list()[0] == "2A"
    assert quarantine(tmp_path, "hospital/ae_attendances")["reason"].to_list() == [
        "invalid_datetime:arrival_datetime; unknown_code:disposal"
    ]
    assert quarantine(tmp_path, "social_care/events")["reason"].to_list() == [
        "unknown_code:event_type"
    ]
    assert "Home care" in loaded(tmp_path, "social_care/events")["service_type"].to_list()
    ledger_balances(tmp_path)


def test_duplicate_keys_keep_the_first_delivery(tmp_path: Path) -> None:
    write_landing(tmp_path)
    again = [patient("alice", given_name="Alicia"), patient("alice", gp_patient_id="G07777")]
    write_table(tmp_path, "gp/patients", again, "patients_2024_02.csv")
    write_table(tmp_path, "gp/patients", [patient("bob")] * 2, "patients_2024_03.csv")
    summary = ingest(tmp_path)
    q = quarantine(tmp_path, "gp/patients")
    assert q.select("file", "line", "reason").rows() == [
        ("landing/gp/patients_2024_02.csv", 2, "duplicate_key"),
        ("landing/gp/patients_2024_03.csv", 2, "duplicate_key"),
        ("landing/gp/patients_2024_03.csv", 3, "duplicate_key"),
    ]
    alice = loaded(tmp_path, "gp/patients").filter(pl.col("gp_patient_id") == gp_id("alice"))
    assert alice["given_name"].to_list() == ["Alice"]
    assert summary["tables"]["patients"]["quarantine_reasons"] == {"duplicate_key": 3}
    per_file = read_ledger(tmp_path).filter(pl.col("table") == "patients").sort("file")
    assert per_file.select("rows_received", "rows_loaded", "rows_quarantined").rows() == [
        (7, 7, 0),
        (2, 1, 1),
        (2, 0, 2),
    ]


def test_non_utf8_bytes_quarantine_only_the_affected_rows(tmp_path: Path) -> None:
    write_landing(tmp_path)
    good = csv_bytes(list(GP_PATIENTS.column_names), [patient("alice", gp_patient_id="G08001")])
    latin1 = patient("bob", gp_patient_id="G08002", given_name="Zo\u00eb")
    bad = csv_bytes(list(GP_PATIENTS.column_names), [latin1]).split(b"\n", 1)[1]
    bad = bad.replace("Zoë".encode(), "Zoë".encode("latin-1"))
    path = tmp_path / "landing/gp/patients_latin1.csv"
    path.write_bytes(good + bad)
    ingest(tmp_path)
    q = quarantine(tmp_path, "gp/patients")
    assert q.select("file", "line", "reason", "gp_patient_id").rows() == [
        ("landing/gp/patients_latin1.csv", 3, "invalid_utf8", "G08002")
    ]
    assert "G08001" in loaded(tmp_path, "gp/patients")["gp_patient_id"].to_list()
    ledger_balances(tmp_path)


def test_line_numbers_count_quoted_newlines_and_blank_lines(tmp_path: Path) -> None:
    write_landing(tmp_path)
    header = ",".join(GP_EVENTS.column_names)
    text = (
        f"{header}\r\n"
        f'{PRACTICE},"{gp_id("alice")}",2023-01-01,"1234\r\n5"\r\n'  # spans lines 2-3
        "\r\n"  # line 4: blank, not a row
        f"{PRACTICE},{gp_id('alice')},,99\r\n"  # line 5: no date
        f"{PRACTICE},{gp_id('alice')},2023-01-02,99,extra\r\n"  # line 6: too many fields
    )
    (tmp_path / "landing/gp/events_crlf.csv").write_bytes(text.encode())
    ingest(tmp_path)
    q = quarantine(tmp_path, "gp/events").filter(pl.col("file").str.ends_with("crlf.csv"))
    assert q.select("line", "reason").rows() == [(5, "missing:event_date"), (6, "too_many_fields")]
    ledger = read_ledger(tmp_path).filter(pl.col("file").str.ends_with("crlf.csv"))
    assert ledger.select("rows_received", "rows_loaded", "rows_quarantined").row(0) == (3, 1, 2)


def test_ledger_rerun_replaces_the_run_and_keeps_other_runs(tmp_path: Path) -> None:
    write_landing(tmp_path)
    run_all(tmp_path, "run-1")
    first = (tmp_path / "ledger.csv").read_bytes()
    run_all(tmp_path, "run-1")
    assert (tmp_path / "ledger.csv").read_bytes() == first
    run_all(tmp_path, "run-2")
    ledger = read_ledger(tmp_path)
    assert ledger.group_by("run_id").len().sort("run_id").rows() == [
        ("run-1", len(TABLES)),
        ("run-2", len(TABLES)),
    ]
    assert ledger.filter(pl.col("run_id") == "run-1").equals(
        ledger.filter(pl.col("run_id") == "run-2").with_columns(pl.lit("run-1").alias("run_id"))
    )


def test_finalise_raises_when_figures_do_not_balance(tmp_path: Path) -> None:
    write_landing(tmp_path)
    run_all(tmp_path)
    ledger = read_ledger(tmp_path)
    tampered = ledger.with_columns(
        pl.when(pl.col("table") == "patients")
        .then(pl.col("rows_loaded") + 1)
        .otherwise(pl.col("rows_loaded"))
        .alias("rows_loaded")
    )
    tampered.write_csv(tmp_path / "ledger.csv")
    with pytest.raises(LedgerImbalanceError, match=r"landing/gp/patients\.csv"):
        finalise_ledger(tmp_path, RUN)

    # Balanced figures, but an output that lost a row: also caught.
    ledger.write_csv(tmp_path / "ledger.csv")
    events = tmp_path / "pseudonymised/gp/events.parquet"
    pl.read_parquet(events).head(1).write_parquet(events)
    with pytest.raises(LedgerImbalanceError, match="gp/events: ledger says 4 rows loaded"):
        finalise_ledger(tmp_path, RUN)
    with pytest.raises(LedgerImbalanceError, match="no rows for this run"):
        finalise_ledger(tmp_path, "never-ran")


def test_iso_datetimes_in_common_shapes_parse_to_naive_utc(tmp_path: Path) -> None:
    rows = baseline_rows()
    base = rows["hospital/ae_attendances"][0]
    shapes = {
        "2023-03-01T09:15:00": datetime(2023, 3, 1, 9, 15),
        "2023-03-01 09:15": datetime(2023, 3, 1, 9, 15),
        "2023-03-01T09:15:00.250": datetime(2023, 3, 1, 9, 15, 0, 250000),
        "2023-03-01T09:15:00Z": datetime(2023, 3, 1, 9, 15),
        "2023-06-01T10:15:00+01:00": datetime(2023, 6, 1, 9, 15),
        "2023-06-01T08:15:00-0100": datetime(2023, 6, 1, 9, 15),
    }
    rows["hospital/ae_attendances"] = [
        base | {"attendance_id": f"AEX{i}", "arrival_datetime": text, "departure_datetime": ""}
        for i, text in enumerate(shapes)
    ]
    write_landing(tmp_path, rows)
    ingest(tmp_path, "hospital")
    got = loaded(tmp_path, "hospital/ae_attendances").sort("attendance_id")
    assert got["arrival_datetime"].to_list() == list(shapes.values())
    assert got["departure_datetime"].null_count() == len(shapes)


def test_empty_file_without_header_is_rejected(tmp_path: Path) -> None:
    write_landing(tmp_path)
    (tmp_path / "landing/gp/events_empty.csv").write_bytes(b"")
    with pytest.raises(MissingColumnsError, match=r"events_empty\.csv: missing required column"):
        ingest(tmp_path)
