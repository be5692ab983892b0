"""Hostile and malformed landing files: each gets its documented outcome, never a traceback.

One test per case of issue 13 point 4, on the hand-made extracts of
``ingest_fixtures`` plus one end-to-end ``joinedup run`` that shows how a
rejected file reaches the person at the terminal. What each case does and why
is in ``ingest/sniff.py`` (whole files), ``ingest/csv_shape.py`` and
``ingest/read.py`` (rows), ``ingest/validate.py`` (field length) and
``atomic.py`` (CSV outputs).
"""

from __future__ import annotations

import gzip
import os
import random
import re
import subprocess
import sys
import zipfile
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

from joinedup.atomic import read_csv, write_csv
from joinedup.catalogue import quarantine_path, validated_path
from joinedup.contracts import GP_EVENTS, GP_PATIENTS
from joinedup.ingest.errors import (
    EmptyFileError,
    IngestError,
    MalformedCsvError,
    NotCsvTextError,
    UnsafeFileError,
)
from joinedup.ingest.ledger import read_ledger
from joinedup.ingest.read import MAX_FIELD_BYTES
from joinedup.quality.landing import current_volumes, read_volumes, record_volumes
from joinedup.settings import DEMO_KEY

RUN = "run-1"
FORMULA = "=cmd|' /C calc'!A0"
REPO = Path(__file__).resolve().parents[1]


def ledger_row(data_dir: Path, file: str) -> tuple[int, int, int]:
    row = read_ledger(data_dir).filter(pl.col("file") == file)
    assert row.height == 1, read_ledger(data_dir)
    return row.select("rows_received", "rows_loaded", "rows_quarantined").row(0)


def balanced(data_dir: Path) -> bool:
    ledger = read_ledger(data_dir)
    total = ledger["rows_loaded"] + ledger["rows_quarantined"] + ledger["rows_opted_out"]
    return bool((ledger["rows_received"] == total).all())


def patient(person: str, **change: str) -> dict[str, str]:
    row = next(r for r in baseline_rows()["gp/patients"] if r["gp_patient_id"] == gp_id(person))
    return row | change


def patients_csv(rows: list[dict[str, str]]) -> bytes:
    return csv_bytes(list(GP_PATIENTS.column_names), rows)


def assert_rejected_untouched(data_dir: Path, before: dict[Path, bytes], err: IngestError) -> None:
    """A whole-file rejection stops before any output of the source changes."""
    assert "The whole file was rejected" in str(err) and "re-run" in str(err)
    after = {p: p.read_bytes() for p in before}
    assert after == before


def outputs(data_dir: Path) -> dict[Path, bytes]:
    paths = [
        validated_path(data_dir, GP_PATIENTS),
        validated_path(data_dir, GP_EVENTS),
        quarantine_path(data_dir, GP_PATIENTS),
        data_dir / "ledger.csv",
    ]
    return {p: p.read_bytes() for p in paths}


# --- accepted as they are --------------------------------------------------------------------


def test_utf8_bom_is_stripped_and_the_file_loads(tmp_path: Path) -> None:
    write_landing(tmp_path)
    rows = [patient("alice", gp_patient_id="G07001"), patient("bob", gp_patient_id="G07002")]
    (tmp_path / "landing/gp/patients_bom.csv").write_bytes(b"\xef\xbb\xbf" + patients_csv(rows))
    ingest(tmp_path)
    got = loaded(tmp_path, "gp/patients").filter(pl.col("source_file").str.ends_with("bom.csv"))
    # The first column's name carries the BOM in the file: it still matches practice_code.
    assert got["practice_code"].to_list() == [PRACTICE, PRACTICE]
    assert got["gp_patient_id"].to_list() == ["G07001", "G07002"]
    assert ledger_row(tmp_path, "landing/gp/patients_bom.csv") == (2, 2, 0)


def test_crlf_line_endings_load_with_the_right_lines(tmp_path: Path) -> None:
    write_landing(tmp_path)
    rows = [patient(p, gp_patient_id=f"G0710{i}") for i, p in enumerate(["alice", "bob", "dan"])]
    text = patients_csv(rows).replace(b"\n", b"\r\n")
    (tmp_path / "landing/gp/patients_crlf.csv").write_bytes(text)
    ingest(tmp_path)
    got = loaded(tmp_path, "gp/patients").filter(pl.col("source_file").str.ends_with("crlf.csv"))
    assert got.select("source_line", "gp_patient_id", "deregistration_date").rows() == [
        (2, "G07100", None),
        (3, "G07101", None),
        (4, "G07102", None),
    ]
    # No carriage return survives in the last column's values.
    assert got["registration_date"].cast(pl.String).to_list() == ["2010-01-01"] * 3
    assert ledger_row(tmp_path, "landing/gp/patients_crlf.csv") == (3, 3, 0)


def test_quoted_newlines_and_commas_are_one_value(tmp_path: Path) -> None:
    write_landing(tmp_path)
    rows = [
        patient("alice", gp_patient_id="G07201", given_name="Anne\nMarie"),
        patient("bob", gp_patient_id="G07202", family_name='Jones, "Bobby"'),
        patient("dan", gp_patient_id="G07203"),
    ]
    (tmp_path / "landing/gp/patients_quoted.csv").write_bytes(patients_csv(rows))
    ingest(tmp_path)
    got = (
        loaded(tmp_path, "gp/patients")
        .filter(pl.col("source_file").str.ends_with("quoted.csv"))
        .select("source_line", "gp_patient_id", "given_name", "family_name")
    )
    # One row per record; the contract then decides (free text: whitespace runs become one space).
    assert got.rows() == [
        (2, "G07201", "Anne Marie", "Smith"),
        (4, "G07202", "Bob", 'Jones, "Bobby"'),
        (5, "G07203", "Daniel", "Okafor"),
    ]
    assert ledger_row(tmp_path, "landing/gp/patients_quoted.csv") == (3, 3, 0)


# --- rows quarantined, the rest loads --------------------------------------------------------


def test_ragged_rows_are_quarantined_with_their_line_and_the_rest_loads(tmp_path: Path) -> None:
    write_landing(tmp_path)
    good = patients_csv([patient("alice", gp_patient_id="G07301")]).decode()
    fields = good.splitlines()[1].split(",")
    lines = [
        good.splitlines()[0],
        ",".join(fields),  # line 2: fits
        ",".join(fields[:-1]),  # line 3: the last (optional, empty) field left out
        ",".join([*fields[:5], *fields[6:]]).replace("G07301", "G07303"),  # 4: one dropped
        ",".join([*fields, "x"]).replace("G07301", "G07304"),  # 5: one field too many
        # 6 and 7: two empty extra fields and two missing ones cancel out in a total count.
        ",".join([*fields, "", ""]).replace("G07301", "G07306"),
        ",".join(fields[:-2]).replace("G07301", "G07307"),
        ",".join(fields).replace("G07301", "G07308"),  # line 8: fits
    ]
    (tmp_path / "landing/gp/patients_ragged.csv").write_text("\n".join(lines) + "\n")
    ingest(tmp_path)
    q = quarantine(tmp_path, "gp/patients").filter(pl.col("file").str.ends_with("ragged.csv"))
    assert q.select("line", "reason").rows() == [
        (3, "too_few_fields"),
        (4, "too_few_fields"),
        (5, "too_many_fields"),
        (6, "too_many_fields"),
        (7, "too_few_fields"),
    ]
    got = loaded(tmp_path, "gp/patients").filter(pl.col("source_file").str.ends_with("ragged.csv"))
    assert got["source_line"].to_list() == [2, 8]
    assert ledger_row(tmp_path, "landing/gp/patients_ragged.csv") == (7, 2, 5)
    assert balanced(tmp_path)


def test_a_10_mb_field_quarantines_its_row_and_is_cut_in_the_quarantine(tmp_path: Path) -> None:
    write_landing(tmp_path)
    huge = "A" * (10 * 1024 * 1024)
    rows = [
        patient("alice", gp_patient_id="G07401"),
        patient("bob", gp_patient_id="G07402", family_name=huge),
        patient("dan", gp_patient_id="G07403"),
    ]
    (tmp_path / "landing/gp/patients_huge.csv").write_bytes(patients_csv(rows))
    ingest(tmp_path)
    q = quarantine(tmp_path, "gp/patients").filter(pl.col("file").str.ends_with("huge.csv"))
    assert q.select("line", "reason", "gp_patient_id").rows() == [
        (3, "field_too_long:family_name", "G07402")
    ]
    kept = q["family_name"].item()
    assert kept.startswith("A" * MAX_FIELD_BYTES)
    assert kept.endswith(f"[cut: {len(huge)} bytes in the file]")
    assert len(kept) < MAX_FIELD_BYTES + 100
    assert quarantine_path(tmp_path, GP_PATIENTS).stat().st_size < 64 * 1024
    got = loaded(tmp_path, "gp/patients").filter(pl.col("source_file").str.ends_with("huge.csv"))
    assert got["gp_patient_id"].to_list() == ["G07401", "G07403"]
    assert ledger_row(tmp_path, "landing/gp/patients_huge.csv") == (3, 2, 1)


def test_formula_injection_is_escaped_in_every_csv_and_kept_as_sent_elsewhere(
    tmp_path: Path,
) -> None:
    write_landing(tmp_path)
    rows = [
        # No local id: quarantined, with the formula in a name field.
        patient("alice", gp_patient_id="", family_name=FORMULA),
        # A usable row whose organisation code is a formula: it reaches volumes.csv.
        patient("bob", gp_patient_id="G07502", practice_code="@SUM(1+1)*cmd|' /C calc'!A0"),
    ]
    (tmp_path / "landing/gp/patients_formula.csv").write_bytes(patients_csv(rows))
    run_id = "-2+3+cmd|' /C calc'!A0"  # operator-chosen run ids land in ledger.csv
    ingest(tmp_path, run_id=run_id)

    # Parquet keeps what the supplier sent, byte for byte: it is the evidence.
    assert quarantine(tmp_path, "gp/patients")["family_name"].to_list() == [FORMULA]

    ledger_text = (tmp_path / "ledger.csv").read_text()
    assert f"'{run_id}" in ledger_text
    for line in ledger_text.splitlines()[1:]:
        assert not line.startswith(("=", "+", "-", "@")), line
    # Read back exactly, so the run still balances under its own id.
    assert set(read_ledger(tmp_path)["run_id"]) == {run_id}
    assert balanced(tmp_path)

    record_volumes(tmp_path, run_id, current_volumes(tmp_path))
    volumes_text = (tmp_path / "quality/volumes.csv").read_text()
    assert ",'@SUM(1+1)*cmd|' /C calc'!A0," in volumes_text
    assert "@SUM(1+1)*cmd|' /C calc'!A0" in read_volumes(tmp_path)["org_code"].to_list()


def test_csv_escaping_leaves_numbers_alone_and_round_trips(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "text": [FORMULA, "+44 113 496 0000", "@x", "\tx", "\rx", "'quoted", "-1", "+7", "a"],
            "count": [-1, -2, 3, 4, 5, 6, 7, 8, 9],
        }
    )
    path = write_csv(frame, tmp_path / "out.csv")
    cells = pl.read_csv(path, infer_schema_length=0)
    assert cells["text"].to_list() == [
        f"'{FORMULA}",
        "'+44 113 496 0000",
        "'@x",
        "'\tx",
        "'\rx",
        "''quoted",
        "-1",  # a plain number is a number in a spreadsheet, not a formula
        "+7",
        "a",
    ]
    assert cells["count"].to_list()[:2] == ["-1", "-2"]  # integer columns untouched
    assert read_csv(path, schema=frame.schema).equals(frame)


def test_every_csv_output_is_written_through_the_escaping_writer() -> None:
    """A new CSV writer anywhere in the code that people run would bypass the escaping."""
    allowed = {
        REPO / "src/joinedup/atomic.py",  # the escaping writer itself
        # Writes the synthetic *landing* extracts (supplier side) and their truth.
        REPO / "src/joinedup/synth/generate.py",
    }
    writer = re.compile(r"\.write_csv\(|csv\.writer\(|csv\.DictWriter\(|\.to_csv\(|COPY .* TO ")
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for folder in ("src", "dags", "dashboard")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path not in allowed
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if writer.search(line)
    ]
    assert offenders == []


# --- whole file rejected, nothing touched ----------------------------------------------------


def test_binary_garbage_rejects_the_file_before_anything_is_written(tmp_path: Path) -> None:
    write_landing(tmp_path)
    ingest(tmp_path)
    before = outputs(tmp_path)
    garbage = random.Random(13).randbytes(64 * 1024)
    path = tmp_path / "landing/gp/patients_garbage.csv"

    # A valid header, then a transfer that broke off into binary.
    path.write_bytes(patients_csv([patient("alice", gp_patient_id="G07601")]) + garbage)
    with pytest.raises(
        NotCsvTextError, match=r"patients_garbage\.csv: holds a NUL byte at line \d"
    ):
        ingest(tmp_path)

    # Nothing but garbage: the header is not text.
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + garbage)
    with pytest.raises(NotCsvTextError, match=r"NUL byte|not UTF-8") as err:
        ingest(tmp_path)
    assert_rejected_untouched(tmp_path, before, err.value)

    # Not UTF-8 in the header (Latin-1 names): named, with the byte.
    path.write_bytes("practice_code,given_name_é\n".encode("latin-1"))
    with pytest.raises(NotCsvTextError, match=r"header row is not UTF-8 text \(byte 25: 0xe9\)"):
        ingest(tmp_path)


def test_empty_file_with_no_header_is_rejected_not_read_as_empty(tmp_path: Path) -> None:
    write_landing(tmp_path)
    ingest(tmp_path)
    before = outputs(tmp_path)
    path = tmp_path / "landing/gp/events_2024_05.csv"
    path.write_bytes(b"")
    with pytest.raises(
        EmptyFileError, match=r"events_2024_05\.csv: .*the file is empty \(0 bytes\)"
    ):
        ingest(tmp_path)
    path.write_bytes(b"\r\n" + csv_bytes(list(GP_EVENTS.column_names), []))
    with pytest.raises(EmptyFileError, match="the first line is blank") as err:
        ingest(tmp_path)
    assert_rejected_untouched(tmp_path, before, err.value)
    # The header alone is the valid empty delivery.
    path.write_bytes(csv_bytes(list(GP_EVENTS.column_names), []))
    ingest(tmp_path)
    assert ledger_row(tmp_path, "landing/gp/events_2024_05.csv") == (0, 0, 0)


def test_gzip_and_excel_files_named_csv_are_rejected_with_how_to_fix(tmp_path: Path) -> None:
    write_landing(tmp_path)
    ingest(tmp_path)
    before = outputs(tmp_path)
    path = tmp_path / "landing/gp/patients_2024_06.csv"
    path.write_bytes(gzip.compress(patients_csv([patient("alice", gp_patient_id="G07701")])))
    with pytest.raises(NotCsvTextError) as err:
        ingest(tmp_path)
    assert "patients_2024_06.csv: is gzip-compressed (it starts with the bytes 1f 8b)" in str(
        err.value
    )
    assert "gunzip" in str(err.value)
    assert_rejected_untouched(tmp_path, before, err.value)

    with zipfile.ZipFile(path, "w") as book:  # what an .xlsx workbook is
        book.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(NotCsvTextError, match=r"ZIP archive .* Export the sheet as 'CSV UTF-8'"):
        ingest(tmp_path)


def test_file_names_and_links_cannot_reach_outside_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_landing(data)
    ingest(data)
    before = outputs(data)
    folder = data / "landing/gp"

    # A link to a file outside the data dir: never read.
    secret = tmp_path / "outside" / "patients.csv"
    secret.parent.mkdir()
    secret.write_bytes(patients_csv([patient("alice", gp_patient_id="OUTSIDE1")]))
    (folder / "patients_link.csv").symlink_to(secret)
    with pytest.raises(UnsafeFileError, match=r"landing/gp/patients_link\.csv: is a symbolic link"):
        ingest(data)
    (folder / "patients_link.csv").unlink()

    # A linked folder, a named pipe (a read would block forever) and a name outside the
    # table's pattern are not delivery files: never opened.
    (folder / "patients_dir.csv").symlink_to(secret.parent, target_is_directory=True)
    os.mkfifo(folder / "patients_fifo.csv")
    (folder / "..\\..\\patients.csv").write_bytes(secret.read_bytes())
    ingest(data)
    assert "OUTSIDE1" not in loaded(data, "gp/patients")["gp_patient_id"].to_list()
    assert read_ledger(data).filter(pl.col("table") == "patients").height == 1
    for name in ("patients_dir.csv", "patients_fifo.csv", "..\\..\\patients.csv"):
        (folder / name).unlink()

    # Windows-style traversal, log-forging newlines, a right-to-left override.
    hostile = {
        "patients..\\..\\x.csv": "backslash",
        "patients\n2025-01-01 INFO all rows loaded.csv": "\\x0a",
        "patients_\u202egpj.csv": "\\u202e",
    }
    for name, shown in hostile.items():
        path = folder / name
        path.write_bytes(patients_csv([patient("alice", gp_patient_id="G07801")]))
        with pytest.raises(UnsafeFileError) as err:
            ingest(data)
        message = str(err.value)
        assert shown in message
        assert "\n" not in message and "\u202e" not in message
        assert_rejected_untouched(data, before, err.value)
        path.unlink()

    # An odd but harmless name loads; outputs are named after tables, never after files.
    write_table(data, "gp/patients", [patient("bob", gp_patient_id="G07802")], "patients (2).csv")
    ingest(data)
    assert ledger_row(data, "landing/gp/patients (2).csv") == (1, 1, 0)
    written = {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()}
    assert {w for w in written if w.startswith("quarantine/")} == {
        "quarantine/gp/patients.parquet",
        "quarantine/gp/events.parquet",
    }
    everything = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    assert b"OUTSIDE1" not in everything


def test_stray_quotes_and_bare_cr_line_endings_are_rejected_with_the_line(tmp_path: Path) -> None:
    write_landing(tmp_path)
    path = tmp_path / "landing/gp/patients_quotes.csv"
    good = patients_csv([patient("alice", gp_patient_id="G07901")]).decode()
    path.write_text(good + good.splitlines()[1].replace("Smith", 'O"Brien') + "\n")
    with pytest.raises(MalformedCsvError, match=r"patients_quotes\.csv: line 3: a \" character"):
        ingest(tmp_path)
    path.write_text(good + good.splitlines()[1].replace("Smith", '"Smith') + "\n")
    with pytest.raises(MalformedCsvError, match="starts at or before line 3 never closes"):
        ingest(tmp_path)
    path.write_bytes(good.replace("\n", "\r").encode())
    with pytest.raises(NotCsvTextError, match="bare carriage return"):
        ingest(tmp_path)
    path.write_bytes(b"practice_code," * 10_000)  # 140 kB and no line end: no header
    with pytest.raises(NotCsvTextError, match="first line is longer than 65,536 bytes"):
        ingest(tmp_path)


# --- what the person at the terminal sees ----------------------------------------------------


@pytest.mark.slow
def test_joinedup_run_names_a_rejected_file_without_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_landing(data)
    (data / "landing/gp/events_2024_07.csv").write_bytes(
        gzip.compress(csv_bytes(list(GP_EVENTS.column_names), []))
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["JOINEDUP_PSEUDONYMISATION_KEY"] = DEMO_KEY
    done = subprocess.run(
        [sys.executable, "-m", "joinedup.cli", "run", "--data-dir", str(data), "--run-id", "h1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "joinedup_ingest_gp failed at task ingest" in done.stderr
    assert "landing/gp/events_2024_07.csv: is gzip-compressed" in done.stderr
    assert "gunzip" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    # Nothing downstream ran: no published marts, no run summary.
    assert not (data / "analytics.duckdb").exists()
    assert not (data / "runs" / "h1.json").exists()


def test_a_whole_run_still_balances_around_quarantined_hostile_rows(tmp_path: Path) -> None:
    """Ragged, oversized and formula rows together: opt-outs, pseudonymisation and the ledger."""
    write_landing(tmp_path)
    good = patients_csv([patient("alice", gp_patient_id="G08101")]).decode()
    fields = good.splitlines()[1].split(",")
    text = "\n".join(
        [
            good.splitlines()[0],
            ",".join(fields[:-1]).replace("G08101", "G08102"),
            ",".join(fields).replace("G08101", "G08103").replace("Smith", "X" * 5000),
            ",".join(fields).replace("G08101", "G08104").replace("Smith", FORMULA),
        ]
    )
    (tmp_path / "landing/gp/patients_mixed.csv").write_text(text + "\n")
    summary = run_all(tmp_path)
    reasons = summary["ingest"][0]["tables"]["patients"]["quarantine_reasons"]
    assert reasons == {"field_too_long": 1, "too_few_fields": 1}
    assert summary["ledger"]["rows_received"] == summary["ledger"]["rows_loaded"] + (
        summary["ledger"]["rows_quarantined"] + summary["ledger"]["rows_opted_out"]
    )
    assert ledger_row(tmp_path, "landing/gp/patients_mixed.csv") == (3, 1, 2)
    assert len(PEOPLE) + 1 == loaded(tmp_path, "gp/patients").height
